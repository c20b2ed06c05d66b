"""VideoLatent cost benchmark: train step vs SFT, latent inference vs explicit CoT, peak memory.

    python bench/latent.py [--batch 4 --frames 8 --size 224 --latents 8 --cot-tokens 256 --json OUT]

One small config (8-layer 512-wide GQA decoder, 4-block vision tower, random weights),
8 frames at 224 px (256 video tokens) + a short question, measured in one run:
  (a) train-step time of `videolatent` (K latent steps) over `sft` (K = 0); target <= 1.3x;
  (b) time to the answer (8 answer tokens) of latent inference (K steps, then the answer) over
      explicit chain of thought (`--cot-tokens` text tokens, then the answer); target >= 20x less.
      Reported twice: end to end (prefill included, which both share) and as reasoning overhead
      (time beyond plain answering), the cost a reasoning method adds;
  (c) peak memory of each jitted train step, from XLA's buffer assignment (`memory_analysis`);
  (d) each neighbouring method's option (NEIGHBOURS) over plain videolatent: train step and time to answer.
Times are medians after warm-up; compile time is excluded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax.config import model_config, parse
from vlatent_jax.data.collate import Example
from vlatent_jax.inference import Model
from vlatent_jax.models.vlm import VideoLM
from vlatent_jax.train.batch import collate
from vlatent_jax.train.setup import build_model, init_train_state
from vlatent_jax.train.step import make_train_step

VOCAB = 32000
TOKENS = dict(image_token_id=31990, video_token_id=31991, vision_start_token_id=31992, vision_end_token_id=31993,
              latent_start_token_id=31994, latent_end_token_id=31995, eos_token_id=None, bos_token_id=None)
SMALL = {
    "vision": dict(depth=4, hidden_size=256, intermediate_size=512, num_heads=4, out_hidden_size=512,
                   fullatt_block_indexes=[3], window_size=112),
    "llm": dict(vocab_size=VOCAB, hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                num_attention_heads=8, num_key_value_heads=2, mrope_section=[8, 12, 12]),
    "tokens": TOKENS,
}


# Options of the neighbouring latent methods: latent config overrides and what inference then does differently.
NEIGHBOURS = {
    "sensory_gating": ({"sensory_gating": (0.0, 0.5)}, {"answer_sees_video": False}),
    "trajectory": ({"trajectory_weight": 1.0}, {}),  # teacher trajectories from the data: nothing at inference
}


def timed(fn, repeats: int) -> float:
  fn()  # warm-up (compile)
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    times.append(time.perf_counter() - t)
  return statistics.median(times)


def examples(batch: int, frames: int, size: int, seed: int = 0) -> list[Example]:
  rng = np.random.RandomState(seed)
  grid = np.array([[frames // 2, size // 14, size // 14]])
  tokens = int(np.prod(grid)) // 4
  return [Example([1, 2, TOKENS["vision_start_token_id"]] + [TOKENS["video_token_id"]] * tokens +
                  [TOKENS["vision_end_token_id"]] + list(rng.randint(10, 1000, 24)),
                  list(rng.randint(10, 1000, 8)), rng.randn(int(np.prod(grid)), 1176).astype(np.float32),
                  grid, np.array([1.0])) for _ in range(batch)]


def train_step_cost(mode: str, args, latent: dict | None = None) -> dict:
  config = parse({"model": SMALL, "latent": {"mode": mode, "num_latents": args.latents, **(latent or {})},
                  "train": {"steps": 100, "batch_size": args.batch}})
  mc = model_config(config.model, config.latent)
  graphdef, params, rest = build_model(config, mc, 0)
  state, tx, schedule = init_train_state(config, params)
  batch = collate(examples(args.batch, args.frames, args.size), mc, num_latents=config.latent.steps, max_answer_len=8)
  if config.latent.trajectory_weight:  # each latent's segment as its teacher trajectory
    batch["teacher_trajectory"] = batch["align_weights"]
  batch = jax.tree.map(jnp.asarray, batch)
  step = make_train_step(graphdef, rest, config, tx, schedule)
  rng = jax.random.key(0)
  memory = step.lower(state, batch, rng).compile().memory_analysis()
  holder = {"state": state}

  def run():
    holder["state"], metrics = step(holder["state"], batch, rng)
    jax.block_until_ready(metrics)

  seconds = timed(run, args.repeats)
  return {"step_s": seconds, "temp_bytes": int(memory.temp_size_in_bytes),
          "peak_bytes": int(memory.argument_size_in_bytes + memory.output_size_in_bytes
                            + memory.temp_size_in_bytes - memory.alias_size_in_bytes)}


def inference_cost(args) -> dict:
  config = parse({"model": SMALL, "latent": {"mode": "videolatent", "num_latents": args.latents}})
  mc = model_config(config.model, config.latent)
  params = nnx.to_pure_dict(nnx.state(VideoLM(mc, rngs=nnx.Rngs(0)), nnx.Param))
  model = Model(mc, params)
  ex = examples(1, args.frames, args.size)[0]
  inputs = dict(input_ids=np.array([ex.prompt_ids]), pixel_values_videos=ex.pixel_values_videos,
                video_grid_thw=ex.video_grid_thw, second_per_grid_ts=ex.second_per_grid_ts)
  answer = 8

  def latency(**kw):
    return timed(lambda: model.generate(**inputs, max_new_tokens=answer, **kw), args.repeats)

  return {"sft_s": latency(mode="sft"), "latent_s": latency(mode="videolatent", num_latents=args.latents),
          "cot_s": latency(mode="cot", cot_tokens=args.cot_tokens),
          **{f"{name}_s": latency(mode="videolatent", num_latents=args.latents, **generate)
             for name, (_, generate) in NEIGHBOURS.items()}}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--batch", type=int, default=4)
  p.add_argument("--frames", type=int, default=8)
  p.add_argument("--size", type=int, default=224)
  p.add_argument("--latents", type=int, default=8)
  p.add_argument("--cot-tokens", type=int, default=256)
  p.add_argument("--repeats", type=int, default=5)
  p.add_argument("--json", metavar="OUT")
  args = p.parse_args(argv)

  sft, vl = train_step_cost("sft", args), train_step_cost("videolatent", args)
  neighbours = {name: train_step_cost("videolatent", args, latent) for name, (latent, _) in NEIGHBOURS.items()}
  inf = inference_cost(args)
  step_ratio = vl["step_s"] / sft["step_s"]
  e2e_ratio = inf["cot_s"] / inf["latent_s"]
  overhead_ratio = (inf["cot_s"] - inf["sft_s"]) / max(inf["latent_s"] - inf["sft_s"], 1e-9)
  mib = 1 / 2 ** 20
  print(f"device: {jax.devices()[0].device_kind}, batch {args.batch}, {args.frames} frames at {args.size} px, "
        f"K = {args.latents}")
  print(f"(a) train step   sft {sft['step_s'] * 1e3:8.1f} ms   videolatent {vl['step_s'] * 1e3:8.1f} ms   "
        f"ratio {step_ratio:.2f}x (target <= 1.3x: {'PASS' if step_ratio <= 1.3 else 'MISS'})")
  print(f"(b) to answer    sft {inf['sft_s'] * 1e3:8.1f} ms   latent {inf['latent_s'] * 1e3:8.1f} ms   "
        f"cot-{args.cot_tokens} {inf['cot_s'] * 1e3:8.1f} ms")
  print(f"    cot / latent end to end {e2e_ratio:.1f}x, reasoning overhead {overhead_ratio:.1f}x "
        f"(target >= 20x: {'PASS' if overhead_ratio >= 20 else 'MISS'} on overhead, "
        f"{'PASS' if e2e_ratio >= 20 else 'MISS'} end to end)")
  print(f"(c) peak memory  sft {sft['peak_bytes'] * mib:8.1f} MiB   videolatent {vl['peak_bytes'] * mib:8.1f} MiB   "
        f"ratio {vl['peak_bytes'] / sft['peak_bytes']:.2f}x (temp {sft['temp_bytes'] * mib:.1f} / "
        f"{vl['temp_bytes'] * mib:.1f} MiB)")
  for name, cost in neighbours.items():
    print(f"(d) {name:<14} train step {cost['step_s'] * 1e3:8.1f} ms ({cost['step_s'] / vl['step_s']:.2f}x "
          f"videolatent), to answer {inf[name + '_s'] * 1e3:8.1f} ms ({inf[name + '_s'] / inf['latent_s']:.2f}x)")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"args": vars(args), "sft_train": sft, "videolatent_train": vl, "inference": inf,
                 "neighbours_train": neighbours,
                 "train_step_ratio": step_ratio, "cot_over_latent_end_to_end": e2e_ratio,
                 "cot_over_latent_overhead": overhead_ratio}, f, indent=2)


if __name__ == "__main__":
  main()
