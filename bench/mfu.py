"""Model FLOPs utilisation (MFU) of the train step, against this device's own measured matmul peak.

    python bench/mfu.py [--config tiny|small|both|3b|7b] [--steps N] [--batch B] [--dtype D]
                        [--mode sft|videolatent] [--remat P] [--scan | --no-scan] [--attention A]
                        [--breakdown] [--profile] [--wait-quiet S] [--json OUT]
    python bench/mfu.py --config 3b --memory-only [--batch B] [--mode M]   # compile only; XLA's memory analysis
    python bench/mfu.py --config 3b --shipped --memory-only  # configs/qwen2_5_vl_3b.py on its mesh (7b: 16 devices)

MFU = (analytic model FLOPs per step / median step time) / matmul peak, all measured in one run:
  model FLOPs  `vlatent_jax.flops.train_flops` from the model config and the batch's sizes (valid
               vision patches, prompt / latent / answer lengths): forward + backward of every matmul,
               attention scores and values included. Cross-check: XLA's `cost_analysis()` of the
               compiled step over the analytic count of the work as run (vision padding included,
               each scan body once, since XLA does not multiply loop bodies by their trip count).
  step time    median of --steps jitted train steps after compile and one warm-up step.
  peak         best FLOP/s of a jitted square matmul in the step's compute dtype (1024..4096 on
               CPU, 4096..8192 on GPU/TPU), measured before and after the configs, the best kept:
               what this device really sustains on dense matmuls.

Configs (random weights, synthetic batches built with `collate`, every prompt filling its bucket):
  tiny   configs/tiny.py as trained on the embedded benchmark: batch 16, 16 frames at 56 px
         (grid [8, 4, 4], padded to 64 patches a slice by the vision layout), prompt 128, K 4.
  small  a 4-layer 1024-wide decoder (GQA 16/4 heads of 64, MLP 2816, vocab 8192), a 4-block
         384-wide vision tower (frozen, as in the real configs), batch 8, 8 frames at 112 px
         (grid [4, 8, 8], no patch padding), prompt 128, K 8, answer 16.
  3b / 7b  the Qwen2.5-VL-3B / 7B architectures with random weights (no checkpoint needed), frozen vision,
         bf16 compute, f32 master weights, the real configs' latent settings; batch 4, 16 frames at 336 px
         (1,152 video tokens), prompt 1,280, answer 16; remat full and scan_layers as the shipped
         configs set them (`--remat none --no-scan` for the unrolled step). `--shipped` instead lowers `configs/qwen2_5_vl_<size>.py` exactly as shipped
         (its batch, mesh and 2,048-token prompts, answer `data.max_answer_len`) on as many simulated CPU
         devices as its mesh needs.
`--memory-only` never runs a step nor materialises a weight: the step is lowered from `jax.eval_shape`
shapes with the mesh's shardings and compiled, and XLA's memory analysis of one device's program is
printed (arguments + outputs + temporaries - donated aliases), the last line ending in
`per-device memory: X GiB`. On a CPU host this reads the CPU compiler's buffer assignment, a proxy
for an accelerator's (which fuses and schedules differently).
Compute dtype: float32 on CPU (XLA's CPU bfloat16 matmuls are no faster here), bfloat16 on GPU/TPU;
--dtype overrides. --breakdown also times the forward pass and forward + backward alone; --profile
traces one step with jax.profiler and sums op time by kind (matmul, copy/transpose, other).
Shared machines: each timing first waits (--wait-quiet) for a quiet second, and the background CPU
load during it is reported with the figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax import flops
from vlatent_jax.config import model_config, parse
from vlatent_jax.data.collate import Example
from vlatent_jax.train.batch import collate
from vlatent_jax.train.optim import learning_rate_schedule, make_optimizer
from vlatent_jax.train.setup import build_model, init_train_state
from vlatent_jax.train.step import TrainState, _compute_params, compute_losses, make_train_step

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The embedded benchmark's tokenizer layout (512 tokens); text tokens are drawn from [TEXT_LOW, vocab).
TOKENS = {"vision_start_token_id": 3, "vision_end_token_id": 4, "image_token_id": 5, "video_token_id": 6,
          "latent_start_token_id": 7, "latent_end_token_id": 8, "bos_token_id": None, "eos_token_id": 2,
          "pad_token_id": 0}
TEXT_LOW = 16


@dataclasses.dataclass(frozen=True)
class Workload:
  batch: int
  frames: int
  size: int        # frame side in pixels (multiple of 28)
  prompt_len: int  # prompt positions incl. <|latent_start|>
  answer_len: int


def tiny_config() -> dict:
  spec = importlib.util.spec_from_file_location("tiny", os.path.join(ROOT, "configs", "tiny.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config().to_dict()
  c["model"]["llm"] = dict(c["model"]["llm"], vocab_size=512)
  c["model"]["tokens"] = TOKENS
  return c


def small_config() -> dict:
  return {
      "model": {"vision": {"depth": 4, "hidden_size": 384, "intermediate_size": 1024, "num_heads": 6,
                           "out_hidden_size": 1024, "fullatt_block_indexes": [3], "window_size": 112},
                "llm": {"vocab_size": 8192, "hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 4,
                        "num_attention_heads": 16, "num_key_value_heads": 4, "mrope_section": [8, 12, 12]},
                "tokens": TOKENS},
      "latent": {"mode": "videolatent", "num_latents": 8, "num_heads": 8},
      "optim": {"frozen": ["vision"]},
      "train": {"steps": 100},
  }


# Qwen2.5-VL's published architectures (the HF config.json of Qwen/Qwen2.5-VL-{3B,7B}-Instruct).
VISION = {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
          "fullatt_block_indexes": [7, 15, 23, 31], "window_size": 112, "tokens_per_second": 2.0}
ARCHITECTURES = {
    "3b": {"vision": dict(VISION, out_hidden_size=2048),
           "llm": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36,
                   "num_attention_heads": 16, "num_key_value_heads": 2, "tie_word_embeddings": True}},
    "7b": {"vision": dict(VISION, out_hidden_size=3584),
           "llm": {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
                   "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False}},
}
REAL_TOKENS = {"vision_start_token_id": 151652, "vision_end_token_id": 151653, "image_token_id": 151655,
               "video_token_id": 151656, "latent_start_token_id": 151665, "latent_end_token_id": 151666,
               "bos_token_id": 151643, "eos_token_id": 151645, "pad_token_id": 151643}


def real_config(size: str) -> dict:
  """configs/qwen2_5_vl_<size>.py as shipped, with the architecture inline instead of `init_from`."""
  from vlatent_jax.config import load_config_file
  c = load_config_file(os.path.join(ROOT, "configs", f"qwen2_5_vl_{size}.py")).to_dict()
  c["model"] = dict(c["model"], init_from="", tokens=REAL_TOKENS, **ARCHITECTURES[size])
  return c


CONFIGS = {
    "tiny": (tiny_config, Workload(batch=16, frames=16, size=56, prompt_len=128, answer_len=4)),
    "small": (small_config, Workload(batch=8, frames=8, size=112, prompt_len=128, answer_len=16)),
    "3b": (lambda: real_config("3b"), Workload(batch=4, frames=16, size=336, prompt_len=1280, answer_len=16)),
    "7b": (lambda: real_config("7b"), Workload(batch=4, frames=16, size=336, prompt_len=1280, answer_len=16)),
}


# --------------------------------------------------------------------------- measuring

class BackgroundLoad:
  """Share of the machine's CPUs busy with other processes while the block ran (/proc/stat)."""

  def __enter__(self):
    self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), sum(os.times()[:2])
    return self

  def __exit__(self, *exc):
    if self.busy0 is None:
      self.value = None
      return
    wall = time.perf_counter() - self.t0
    other = (self._busy() - self.busy0) / os.sysconf("SC_CLK_TCK") - (sum(os.times()[:2]) - self.own0)
    self.value = max(0.0, other) / (wall * (os.cpu_count() or 1))

  @staticmethod
  def _busy():
    try:
      with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
      return None
    return sum(fields) - fields[3] - fields[4]  # minus idle, iowait


def timed(fn, repeats: int) -> list[float]:
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return times


def matmul_peak(dtype, sizes: tuple[int, ...], repeats: int) -> dict:
  """Best sustained FLOP/s of a jitted n x n x n matmul (best of `repeats` per size)."""
  matmul = jax.jit(lambda a, b: a @ b)
  per_size = {}
  for n in sizes:
    a = jax.random.normal(jax.random.key(0), (n, n), jnp.float32).astype(dtype)
    b = jax.random.normal(jax.random.key(1), (n, n), jnp.float32).astype(dtype)
    jax.block_until_ready(matmul(a, b))
    per_size[n] = 2 * n ** 3 / min(timed(lambda a=a, b=b: jax.block_until_ready(matmul(a, b)), repeats))
  return {"flops_per_s": max(per_size.values()), "by_size": per_size}


def xla_flops(compiled) -> float | None:
  try:
    cost = compiled.cost_analysis()
  except Exception:  # noqa: BLE001 -- not every backend implements it
    return None
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return (cost or {}).get("flops")


def wait_quiet(max_seconds: float, threshold: float = 0.10) -> None:
  """Shared machines: wait (up to max_seconds) for a 1 s window with background load below threshold."""
  deadline = time.perf_counter() + max_seconds
  while time.perf_counter() < deadline:
    with BackgroundLoad() as load:
      time.sleep(1.0)
    if load.value is None or load.value < threshold:
      return


def profile(run) -> dict:
  """Device time of one step by kind of XLA op, from a jax.profiler trace (thread time on CPU, where
  independent ops run concurrently). Op names are XLA's: dot / ynn_fusion / gemm are matmuls."""
  import collections
  import glob
  import gzip
  import tempfile

  with tempfile.TemporaryDirectory() as d:
    with jax.profiler.trace(d, create_perfetto_trace=True):
      run()
    files = glob.glob(os.path.join(d, "**", "*perfetto_trace.json.gz"), recursive=True)
    if not files:
      return {}
    with gzip.open(files[0]) as f:
      trace = json.load(f)
  events = trace["traceEvents"] if isinstance(trace, dict) else trace
  kinds = collections.Counter()
  for e in events:
    name = e.get("name", "")
    if e.get("ph") != "X" or name.startswith(("$", "Thunk", "Slinky", "Pjit", "while", "call")):
      continue  # Python frames and containers of the ops below
    low = name.lower()
    if any(m in low for m in ("dot", "ynn", "xnn", "gemm", "matmul", "cublas", "cutlass", "xmma", "onednn")):
      kinds["matmul"] += e.get("dur", 0)
    elif "transpose" in low or low.startswith("copy"):
      kinds["copy/transpose"] += e.get("dur", 0)
    elif "dynamic-update-slice" in low or "dynamic-slice" in low or "scatter" in low or "gather" in low:
      kinds["slice/scatter/gather"] += e.get("dur", 0)
    else:
      kinds["other (elementwise, reductions)"] += e.get("dur", 0)
  return {k: v / 1e6 for k, v in kinds.most_common()}


# --------------------------------------------------------------------------- workload

def examples(work: Workload, mc, num_latents: int, seed: int = 0) -> list[Example]:
  """Synthetic examples: one video, then text filling the prompt to exactly `prompt_len`."""
  rng = np.random.RandomState(seed)
  grid = np.array([[work.frames // 2, work.size // 14, work.size // 14]])
  video = int(np.prod(grid)) // mc.vision.merge_unit
  text = work.prompt_len - video - 2 - (1 if num_latents else 0)
  if text < 1:
    raise ValueError(f"prompt_len {work.prompt_len} cannot hold {video} video tokens")
  vocab = mc.llm.vocab_size
  return [Example([mc.vision_start_token_id] + [mc.video_token_id] * video +
                  [mc.vision_end_token_id] + list(rng.randint(TEXT_LOW, vocab, text)),
                  list(rng.randint(TEXT_LOW, vocab, work.answer_len)),
                  rng.randn(int(np.prod(grid)), mc.vision.patch_dim).astype(np.float32), grid, np.array([1.0]))
          for _ in range(work.batch)]


def step_shapes(batch: dict, num_latents: int) -> tuple[flops.StepShape, flops.StepShape]:
  """FLOP-relevant sizes read from the batch without assuming its vision layout ([F, P, ...] packed or
  [B, S, P, ...] per example): (valid work: patches with window_ids >= 0 in the slices holding any,
  executed work: every patch slot of the layout, padding included)."""
  valid_shape = {"vision_patches": 0, "vision_slices": 0}
  run_shape = dict(valid_shape)
  vision = batch.get("vision")
  if vision is not None:
    window_ids = vision["window_ids"] if isinstance(vision, dict) else vision.window_ids
    valid = np.asarray(window_ids) >= 0
    valid_shape = {"vision_patches": int(valid.sum()), "vision_slices": int(valid.any(-1).sum())}
    run_shape = {"vision_patches": int(valid.size), "vision_slices": int(np.prod(valid.shape[:-1]))}
  ids = batch["input_ids"]
  common = {"batch": ids.shape[0], "prompt_len": ids.shape[1], "num_latents": num_latents,
            "target_len": batch["targets"].shape[1]}
  return flops.StepShape(**common, **valid_shape), flops.StepShape(**common, **run_shape)


def with_options(c: dict, args) -> dict:
  """The command line's execution and mode choices over a config dict (default: the config's own)."""
  execution = {"remat": args.remat, "attention": args.attention, "scan_layers": args.scan}
  c["model"] = dict(c["model"], **{k: v for k, v in execution.items() if v is not None})
  if args.mode:
    c["latent"] = dict(c.get("latent", {}), mode=args.mode)
  return c


def main_memory(args) -> dict:
  """--memory-only: lower and compile for the workload's mesh, print XLA's memory analysis."""
  make_config, work = CONFIGS[args.config]
  c = with_options(make_config(), args)
  devices = 1
  if args.shipped:
    mesh_c = c["mesh"]
    devices = max(1, mesh_c["data"]) * max(1, mesh_c["fsdp"]) * max(1, mesh_c["tensor"])
    work = Workload(batch=c["train"]["batch_size"], frames=16, size=336, prompt_len=c["data"]["max_prompt_len"],
                    answer_len=c["data"]["max_answer_len"])
    # Simulated devices exist only if the flag is set before jax's backend starts (nothing has touched it yet).
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={devices}"
    jax.config.update("jax_platforms", "cpu")
  elif args.batch:
    work = dataclasses.replace(work, batch=args.batch)
  if not args.shipped:
    c["mesh"] = {"data": 1, "fsdp": 1, "tensor": 1}
  c["train"] = dict(c.get("train", {}), batch_size=work.batch)
  config = parse(c)
  from vlatent_jax import sharding
  mesh = sharding.make_mesh(config.mesh, jax.devices()[:devices])
  name = f"{args.config}{' (shipped config)' if args.shipped else ''}"
  result = memory_only(config, work, mesh)
  result["device"] = jax.devices()[0].device_kind
  print(f"device: {result['device']} ({jax.devices()[0].platform}), {mesh.size} device(s) in the mesh")
  print_memory(name, result)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(result, f, indent=2, default=str)
  return result


def measure(name: str, args, dtype: str) -> dict:
  make_config, work = CONFIGS[name]
  c = with_options(make_config(), args)
  c["model"] = dict(c["model"], dtype=dtype)
  if args.batch:
    work = dataclasses.replace(work, batch=args.batch)
  c["train"] = dict(c.get("train", {}), batch_size=work.batch)
  config = parse(c)
  mc = model_config(config.model, config.latent)
  k = config.latent.steps
  batch = collate(examples(work, mc, k), mc, num_latents=k, max_answer_len=work.answer_len,
                  prompt_len=work.prompt_len)
  shape, run_shape = step_shapes(batch, k)
  batch = jax.tree.map(jnp.asarray, batch)
  vision_trainable = not any(p.rstrip("/") == "vision" for p in config.optim.frozen)
  grad_steps = None if config.latent.grad_steps < 0 else config.latent.grad_steps
  options = {"vision_trainable": vision_trainable, "grad_steps": grad_steps,
             "attention_pool": config.latent.align_target == "attention_pool"}
  analytic = flops.train_flops(mc, shape, **options)
  forward = sum(flops.forward_flops(mc, shape, attention_pool=options["attention_pool"]).values())
  executed = flops.train_flops(mc, run_shape, **options)["total"]
  # What XLA's cost analysis should see: padding included, each scan body once.
  executed_once = flops.train_flops(mc, run_shape, loops_once=True, **options)["total"]

  graphdef, params, rest = build_model(config, mc, 0)
  num_params = sum(x.size for x in jax.tree.leaves(params))
  state, tx, schedule = init_train_state(config, params)
  rng = jax.random.key(0)
  t = time.perf_counter()
  compiled = make_train_step(graphdef, rest, config, tx, schedule).lower(state, batch, rng).compile()
  compile_s = time.perf_counter() - t
  xla = xla_flops(compiled)
  holder = {"state": state}

  def run():
    holder["state"], metrics = compiled(holder["state"], batch, rng)
    jax.block_until_ready((holder["state"], metrics))

  run()  # warm-up
  wait_quiet(args.wait_quiet)
  with BackgroundLoad() as load:
    times = timed(run, args.steps)
  step_s = statistics.median(times)
  result = {
      "config": name, "dtype": dtype, "params": num_params, "workload": dataclasses.asdict(work),
      "shape": dataclasses.asdict(shape), "vision_patch_slots": run_shape.vision_patches,
      "vision_trainable": vision_trainable,
      "tokens_per_step": shape.batch * (shape.prompt_len + shape.num_latents + shape.target_len - 1),
      "analytic_flops": analytic["total"], "analytic_flops_by_part": analytic, "analytic_flops_forward": forward,
      "executed_flops": executed, "xla_flops": xla, "executed_flops_loops_once": executed_once,
      "compile_s": compile_s, "step_s": step_s, "step_s_all": times, "background_load": load.value,
      "achieved_flops_per_s": analytic["total"] / step_s,
  }
  if args.breakdown:
    result["breakdown_s"] = breakdown(graphdef, rest, config, holder["state"].params, batch, args.steps)
  if args.profile:
    result["profile"] = profile(run)
  return result


def abstract_batch(work: Workload, mc, num_latents: int, mesh) -> dict:
  """The batch as sharded ShapeDtypeStructs: one example collated, its batch dim scaled to work.batch."""
  from vlatent_jax import sharding
  one = collate(examples(dataclasses.replace(work, batch=1), mc, num_latents), mc, num_latents=num_latents,
                max_answer_len=work.answer_len, prompt_len=work.prompt_len)
  one = jax.tree.map(np.asarray, one)
  abstract = jax.tree_util.tree_map_with_path(
      lambda path, x: jax.ShapeDtypeStruct(
          tuple(work.batch if name == "batch" else n for n, name in zip(
              x.shape, sharding.logical_axes(sharding.path_string(path), sharding.BATCH_AXES) + (None,) * x.ndim)),
          x.dtype), one)
  shardings = sharding.batch_shardings(abstract, mesh)
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract, shardings)


def memory_only(config, work: Workload, mesh) -> dict:
  """Lowers and compiles the train step for `mesh` from shapes alone; XLA's memory analysis per device."""
  from vlatent_jax import sharding
  from vlatent_jax.train.setup import _new_model
  mc = model_config(config.model, config.latent)
  k = config.latent.steps
  graphdef, abstract_params, abstract_rest = nnx.split(nnx.eval_shape(lambda: _new_model(config, mc, 0)),
                                                       nnx.Param, ...)
  tx = make_optimizer(config.optim, config.train.steps, abstract_params)
  schedule = learning_rate_schedule(config.optim, config.train.steps)
  abstract_state = jax.eval_shape(lambda p: TrainState(jnp.zeros((), jnp.int32), p, tx.init(p)), abstract_params)
  state_sh = sharding.param_shardings(abstract_state, mesh)
  state = jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), abstract_state, state_sh)
  rest = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), abstract_rest)  # non-parameter state: tiny
  batch = abstract_batch(work, mc, k, mesh)
  replicated = sharding.replicated(mesh)
  step = make_train_step(graphdef, rest, config, tx, schedule,
                         in_shardings=(state_sh, jax.tree.map(lambda x: x.sharding, batch), replicated),
                         out_shardings=(state_sh, replicated), mesh=mesh)
  rng = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
  t = time.perf_counter()
  lowered = step.lower(state, batch, rng)
  lower_s = time.perf_counter() - t
  compiled = lowered.compile()
  compile_s = time.perf_counter() - t - lower_s
  m = compiled.memory_analysis()
  parts = {key: int(getattr(m, f"{key}_size_in_bytes", 0) or 0) for key in ("argument", "output", "temp", "alias",
                                                                           "generated_code")}
  total = parts["argument"] + parts["output"] + parts["temp"] - parts["alias"]
  params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(abstract_params))
  return {"bytes": parts, "per_device_bytes": total, "lower_s": lower_s, "compile_s": compile_s, "params": params,
          "devices": mesh.size, "mesh": dict(mesh.shape), "batch": work.batch, "prompt_len": work.prompt_len,
          "answer_len": work.answer_len, "num_latents": k, "mode": config.latent.mode,
          "execution": dataclasses.asdict(config.model.execution), "dtype": config.model.dtype}


def print_memory(name: str, r: dict) -> None:
  gib = 2 ** 30
  b = r["bytes"]
  ex = r["execution"]
  print(f"{name}: {r['params'] / 1e9:.2f} B params, mode {r['mode']} (K={r['num_latents']}), batch {r['batch']} on "
        f"{r['devices']} device(s) {r['mesh']}, prompt {r['prompt_len']}, answer {r['answer_len']}, {r['dtype']} compute, "
        f"remat {ex['remat']}, scan_layers {ex['scan_layers']}, attention {ex['attention']}")
  print(f"{name}: lowered in {r['lower_s']:.1f} s, compiled in {r['compile_s']:.1f} s; per device: arguments "
        f"{b['argument'] / gib:.2f} GiB + outputs {b['output'] / gib:.2f} + temporaries {b['temp'] / gib:.2f} "
        f"- donated {b['alias'] / gib:.2f}")
  print(f"{name}: per-device memory: {r['per_device_bytes'] / gib:.2f} GiB")


def breakdown(graphdef, rest, config, params, batch, repeats: int) -> dict:
  """Forward alone and forward + backward alone (no optimizer), with the step's own parameter cast."""
  dtype = jnp.dtype(config.model.dtype)

  def loss(params):
    compute = _compute_params(params, config.optim.frozen, dtype)
    return compute_losses(nnx.merge(graphdef, compute, rest), batch, config.latent)[0]

  out = {}
  for key, fn in (("forward", jax.jit(loss)), ("forward_backward", jax.jit(jax.value_and_grad(loss)))):
    jax.block_until_ready(fn(params))
    out[key] = statistics.median(timed(lambda fn=fn: jax.block_until_ready(fn(params)), repeats))
  return out


# --------------------------------------------------------------------------- report

def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--config", choices=("tiny", "small", "both", "3b", "7b"), default="both")
  p.add_argument("--mode", choices=("sft", "videolatent"), default=None, help="latent.mode (default: the config's)")
  p.add_argument("--remat", default=None, help="model.remat (default: the config's; 3b/7b ship full)")
  p.add_argument("--scan", action=argparse.BooleanOptionalAction, default=None,
                 help="model.scan_layers (default: the config's; 3b/7b ship it on)")
  p.add_argument("--attention", default=None, help="model.attention: auto | xla | cudnn | einsum")
  p.add_argument("--memory-only", action="store_true",
                 help="compile without running (no weights materialised) and print XLA's per-device memory")
  p.add_argument("--shipped", action="store_true",
                 help="3b/7b: the shipped config's own batch, mesh and prompt length, on simulated CPU devices")
  p.add_argument("--steps", type=int, default=5, help="timed train steps (median reported)")
  p.add_argument("--batch", type=int, default=None, help="override the config's batch size")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default=None,
                 help="compute dtype (default: float32 on CPU, bfloat16 on GPU/TPU)")
  p.add_argument("--breakdown", action="store_true", help="also time forward and forward + backward alone")
  p.add_argument("--profile", action="store_true", help="also trace one step: device time by kind of op")
  p.add_argument("--wait-quiet", type=float, default=30.0, metavar="S",
                 help="before each timing, wait up to S s for background CPU load < 10%% (shared machines)")
  p.add_argument("--json", metavar="OUT")
  args = p.parse_args(argv)
  if args.steps < 1:
    p.error("--steps must be >= 1")
  if (args.shipped or args.memory_only) and args.config not in ("3b", "7b"):
    p.error("--shipped and --memory-only take --config 3b or 7b")
  if args.shipped and not args.memory_only:
    p.error("--shipped needs --memory-only (its mesh is simulated on CPU devices)")
  if args.memory_only:
    return main_memory(args)

  device = jax.devices()[0]
  cpu = device.platform == "cpu"
  dtype = args.dtype or ("float32" if cpu else "bfloat16")
  sizes, repeats = ((1024, 2048, 4096), 3) if cpu else ((4096, 8192), 10)
  # The peak is measured before and after the configs and the best kept: on a shared machine one
  # measurement may be slowed by other processes (their load is reported with each).
  peaks = []
  wait_quiet(args.wait_quiet)
  with BackgroundLoad() as load:
    peaks.append(dict(matmul_peak(jnp.dtype(dtype), sizes, repeats)))
  peaks[-1]["background_load"] = load.value
  names = ("tiny", "small") if args.config == "both" else (args.config,)
  results = [measure(name, args, dtype) for name in names]
  wait_quiet(args.wait_quiet)
  with BackgroundLoad() as load:
    peaks.append(dict(matmul_peak(jnp.dtype(dtype), sizes, repeats)))
  peaks[-1]["background_load"] = load.value
  peak = max(peaks, key=lambda q: q["flops_per_s"])
  for r in results:
    r["mfu"] = r["achieved_flops_per_s"] / peak["flops_per_s"]

  g = 1e9
  where = f"{os.cpu_count()} CPUs" if cpu else f"{jax.device_count()} device(s)"
  print(f"device: {device.device_kind} ({device.platform}, {where}), compute dtype {dtype}")
  for when, q in zip(("before", "after"), peaks):
    bg = "n/a" if q["background_load"] is None else f"{q['background_load']:.0%}"
    print(f"matmul peak {when}: {q['flops_per_s'] / g:.1f} GFLOP/s (" +
          ", ".join(f"n={n}: {v / g:.1f}" for n, v in q["by_size"].items()) + f"; background load {bg})")
  print(f"MFU below uses the best: {peak['flops_per_s'] / g:.1f} GFLOP/s {dtype}")
  head = (f"{'config':6} {'params':>7} {'batch':>5} {'tokens':>6} {'GFLOP/step':>10} {'XLA/analytic':>12} "
          f"{'step ms':>8} {'GFLOP/s':>8} {'MFU':>6} {'bg load':>7}")
  print(head)
  print("-" * len(head))
  for r in results:
    check = (f"{r['xla_flops'] / r['executed_flops_loops_once']:.3f}" if r["xla_flops"] else "n/a")
    bg = "n/a" if r["background_load"] is None else f"{r['background_load']:.0%}"
    print(f"{r['config']:6} {r['params'] / 1e6:6.1f}M {r['shape']['batch']:5d} {r['tokens_per_step']:6d} "
          f"{r['analytic_flops'] / g:10.2f} {check:>12} {r['step_s'] * 1e3:8.1f} "
          f"{r['achieved_flops_per_s'] / g:8.1f} {r['mfu']:6.1%} {bg:>7}")
  peak_per_core = peak["flops_per_s"] / (os.cpu_count() or 1)
  for r in results:
    parts = {k: v for k, v in r["analytic_flops_by_part"].items() if k != "total" and v > 0}
    share = ", ".join(f"{k} {v / r['analytic_flops']:.0%}" for k, v in sorted(parts.items(), key=lambda kv: -kv[1]))
    s = r["shape"]
    print(f"{r['config']}: FLOPs by part: {share}")
    print(f"{r['config']}: vision {s['vision_patches']} valid of {r['vision_patch_slots']} patch slots run "
          f"({'trained' if r['vision_trainable'] else 'frozen'}): executed FLOPs {r['executed_flops'] / g:.2f} G "
          f"= {r['executed_flops'] / r['analytic_flops']:.2f}x model FLOPs; compile {r['compile_s']:.1f} s; "
          f"steps {', '.join(f'{t * 1e3:.0f}' for t in r['step_s_all'])} ms")
    if "breakdown_s" in r:
      b = r["breakdown_s"]
      rest_ms = (r["step_s"] - b["forward_backward"]) * 1e3
      fwd_flops = r["analytic_flops_forward"]
      print(f"{r['config']}: forward {b['forward'] * 1e3:.1f} ms ({fwd_flops / b['forward'] / g:.1f} GFLOP/s), "
            f"forward+backward {b['forward_backward'] * 1e3:.1f} ms (backward/forward time "
            f"{b['forward_backward'] / b['forward'] - 1:.2f}, FLOPs {r['analytic_flops'] / fwd_flops - 1:.2f}); "
            f"the rest of the step (optimizer) {rest_ms:.1f} ms{' (timing noise)' if rest_ms < 0 else ''}")
    if r.get("profile"):
      total = sum(r["profile"].values())
      rate = r["executed_flops"] / r["profile"].get("matmul", float("nan"))
      print(f"{r['config']}: profiled op time by kind: " +
            ", ".join(f"{k} {v / total:.0%}" for k, v in r["profile"].items()) + f" (of {total * 1e3:.0f} ms"
            f"{' summed over threads' if cpu else ''}); matmul ops ran at {rate / g:.1f} GFLOP/s"
            f"{f' per thread (peak / {os.cpu_count()} cores: {peak_per_core / g:.1f})' if cpu else ''}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"device": device.device_kind, "platform": device.platform, "dtype": dtype, "peak": peak,
                 "results": results, "args": vars(args)}, f, indent=2, default=str)


if __name__ == "__main__":
  main()
