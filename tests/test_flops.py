"""Analytic FLOPs: hand-worked counts for the tiny config, and agreement with XLA's cost analysis."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from vlatent_jax import flops
from vlatent_jax.config import model_config, parse
from vlatent_jax.data.collate import Example
from vlatent_jax.models.vlm import VideoLM
from vlatent_jax.train.batch import collate
from vlatent_jax.train.optim import learning_rate_schedule, make_optimizer
from vlatent_jax.train.step import TrainState, compute_losses, make_train_step

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The embedded benchmark's tokenizer: 512 tokens, these special ids.
TOKENS = {"vision_start_token_id": 3, "vision_end_token_id": 4, "image_token_id": 5, "video_token_id": 6,
          "latent_start_token_id": 7, "latent_end_token_id": 8, "bos_token_id": None, "eos_token_id": 2,
          "pad_token_id": 0}


def tiny_config(**latent):
  spec = importlib.util.spec_from_file_location("tiny", ROOT / "configs" / "tiny.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config().to_dict()
  c["model"]["llm"] = dict(c["model"]["llm"], vocab_size=512)
  c["model"]["tokens"] = TOKENS
  c["latent"].update(latent)
  config = parse(c)
  return config, model_config(config.model, config.latent)


def test_decoder_layer_by_hand():
  # tiny decoder: D 128, F 384, 4 query heads and 2 kv heads of 32 -> q width 128, k/v width 64.
  _, mc = tiny_config()
  got = flops.decoder_layer_flops(mc.llm, tokens=10, keys=20)
  qkvo = 128 * 128 + 2 * 128 * 64 + 128 * 128
  mlp = 3 * 128 * 384
  assert got["linear"] == 2 * 10 * (qkvo + mlp) == 3_932_160
  assert got["attention"] == 2 * 10 * 20 * 128 * 2 == 102_400


def test_vision_by_hand():
  # tiny vision: D 64, F 128, 2 blocks, patches of 3*2*14*14 = 1176 values; one slice of 64 patches.
  _, mc = tiny_config()
  got = flops.vision_flops(mc.vision, patches=64, slices=1)
  assert got["patch_embed"] == 2 * 64 * 1176 * 64
  assert got["blocks"] == 2 * 2 * 64 * (4 * 64 * 64 + 3 * 64 * 128)
  # block 0 attends within windows of 16 patches (56 px), block 1 (full attention) within the slice
  assert got["attention"] == 2 * 2 * 64 * 64 * (16 + 64)
  assert got["merger"] == 2 * 16 * (256 * 256 + 256 * 128)  # 16 merged tokens of 4 * 64 values


def test_train_factors():
  _, mc = tiny_config()
  shape = flops.StepShape(batch=2, prompt_len=40, num_latents=4, target_len=5, vision_patches=128, vision_slices=2)
  fwd = flops.forward_flops(mc, shape)
  full = flops.train_flops(mc, shape)
  assert full["decoder_prefill"] == 3 * fwd["decoder_prefill"]
  assert full["vision_patch_embed"] == 2 * fwd["vision_patch_embed"]  # no gradient for the pixels
  assert full["pooled_targets"] == fwd["pooled_targets"]              # stop-gradient targets
  frozen = flops.train_flops(mc, shape, vision_trainable=False, grad_steps=1)
  assert frozen["vision_blocks"] == fwd["vision_blocks"]
  assert frozen["decoder_latent"] == pytest.approx(fwd["decoder_latent"] / 4 * (3 + 3 * 1))
  assert full["total"] == pytest.approx(sum(v for k, v in full.items() if k != "total"))
  sft = flops.forward_flops(tiny_config(mode="sft")[1], flops.StepShape(2, 40, 0, 4, 128, 2))
  assert sft["decoder_latent"] == sft["lim_memory"] == sft["align_proj"] == 0


def tiny_batch(mc, num_latents: int, batch=2):
  rng = np.random.RandomState(0)
  grid = np.array([[4, 8, 8]])  # 8 frames at 112 px: 64 patches a slice, no padding
  video = int(np.prod(grid)) // 4
  examples = [Example([1, 3] + [6] * video + [4] + list(rng.randint(10, 500, 12)), list(rng.randint(10, 500, 4)),
                      rng.randn(int(np.prod(grid)), 1176).astype(np.float32), grid, np.array([1.0]))
              for _ in range(batch)]
  return jax.tree.map(jnp.asarray, collate(examples, mc, num_latents=num_latents, max_answer_len=4))


def step_shape(batch, num_latents):
  valid = np.asarray(batch["vision"].window_ids) >= 0
  return flops.StepShape(batch=batch["input_ids"].shape[0], prompt_len=batch["input_ids"].shape[1],
                         num_latents=num_latents, target_len=batch["targets"].shape[1],
                         vision_patches=int(valid.sum()), vision_slices=int(valid.any(-1).sum()))


def xla_flops(lowered):
  """XLA's count on the lowered (unoptimised) HLO: no compile needed. None where unavailable."""
  try:
    cost = lowered.cost_analysis()
  except Exception:  # noqa: BLE001 -- some backends do not implement it
    return None
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return (cost or {}).get("flops")


@pytest.mark.parametrize("latent", [{"mode": "videolatent"}, {"mode": "videolatent", "grad_steps": 2},
                                    {"mode": "videolatent", "align_target": "attention_pool"}, {"mode": "sft"}],
                         ids=["videolatent", "grad_steps2", "attention_pool", "sft"])
def test_matches_xla_cost_analysis(latent):
  config, mc = tiny_config(**latent)
  k = config.latent.steps
  batch = tiny_batch(mc, k)
  shape = step_shape(batch, k)
  grad_steps = None if config.latent.grad_steps < 0 else config.latent.grad_steps
  pool = config.latent.align_target == "attention_pool"
  # Abstract parameters: lowering needs shapes only.
  graphdef, params, rest = nnx.split(nnx.eval_shape(lambda: VideoLM(mc, rngs=nnx.Rngs(0))), nnx.Param, ...)

  def forward(params, batch):
    return compute_losses(nnx.merge(graphdef, params, rest), batch, config.latent)[0]

  got = xla_flops(jax.jit(forward).lower(params, batch))
  if got is None:
    pytest.skip("cost_analysis is unavailable on this backend")
  if grad_steps is None:  # forward_total assumes one latent scan
    assert got == pytest.approx(flops.forward_total(mc, shape, attention_pool=pool, loops_once=True), rel=0.15)

  tx = make_optimizer(config.optim, config.train.steps, params)
  state = jax.eval_shape(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)), params)
  step = make_train_step(graphdef, rest, config, tx, learning_rate_schedule(config.optim, config.train.steps))
  got = xla_flops(step.lower(state, batch, jax.random.key(0)))
  # XLA counts a scan body once whatever its trip count; compare like with like.
  want = flops.train_flops(mc, shape, grad_steps=grad_steps, attention_pool=pool, loops_once=True)["total"]
  assert got == pytest.approx(want, rel=0.15)
