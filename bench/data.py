"""Input-pipeline benchmark: Grain over pre-decoded shards vs decoding videos on the fly vs the train step.

    python bench/data.py [--videos 64 --batch 8 --workers 2 --size 56 --json OUT]

Builds the embedded benchmark on the fly under a temporary directory with the project's own tools:
`vlatent_jax.data.synthetic` renders --videos clips (16 frames at 56x56 px, h264 mp4, with its tokenizer)
and `vlatent_jax.data.prepare` writes them as ArrayRecord shards (16 frames per clip, min/max pixels 56*56 / 112*112
as in the demo: a 56 px clip is grid [8, 4, 4] = 32 video tokens and needs no resize; `--size 224`
gives clips resized to 112 px, grid [8, 8, 8], as real videos always are). Then it measures
examples/s, one after another so they do not share the CPU:

  (a) shards: the Grain pipeline (make_dataset) in this process, num_workers=0, 2 read threads
  (b) shards: the same with --workers worker processes (mp_prefetch)
  (c) on the fly: a decord read + preprocess.process_video of each mp4, then `Collate`, batch after
      batch in this thread (what a loader without shards does)
  (c') on the fly through the same Grain machinery as (a) (2 read threads, same batch function):
      the equal-parallelism comparison, shown beside the target
  (d) the train step's consumption: batch / step time of a tiny videolatent model, after warm-up

Targets: the shard pipeline >= 10x faster than on-the-fly decoding (max(a, b) / c), and never the
bottleneck: max(a, b) > (d). Delivery rates are medians over 3 passes of several batches.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

FRAMES, FPS, K, MAX_ANSWER = 16, 8, 4, 8
MIN_PIXELS, MAX_PIXELS = 56 * 56, 112 * 112
SPECIAL = {"image_token_id": "<|image_pad|>", "video_token_id": "<|video_pad|>",
           "vision_start_token_id": "<|vision_start|>", "vision_end_token_id": "<|vision_end|>",
           "latent_start_token_id": "<|latent_start|>", "latent_end_token_id": "<|latent_end|>"}


def read_options():
  """The same read threads and prefetch for every Grain pipeline measured here (make_dataset's default)."""
  import grain

  return grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)


def tiny_config(tokenizer_dir: str, batch: int):
  """A tiny videolatent experiment config whose vocabulary and special ids are the tokenizer's."""
  from vlatent_jax.config import parse

  with open(os.path.join(tokenizer_dir, "tokenizer.json")) as f:
    tok = json.load(f)
  ids = {t["content"]: t["id"] for t in tok["added_tokens"]}
  vocab = max([*tok["model"]["vocab"].values(), *ids.values()]) + 1
  model = {
      "vision": {"depth": 2, "hidden_size": 64, "intermediate_size": 128, "num_heads": 4, "out_hidden_size": 128,
                 "fullatt_block_indexes": [1], "window_size": 56},
      "llm": {"vocab_size": vocab, "hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 2, "mrope_section": [4, 6, 6]},
      "tokens": {key: ids[token] for key, token in SPECIAL.items()},
  }
  return parse({"model": model, "latent": {"mode": "videolatent", "num_latents": K, "num_heads": 4},
                "train": {"steps": 100, "batch_size": batch}})


def build(root: str, num_videos: int, size: int) -> tuple[str, str]:
  """synthetic + prepare through their CLIs under `root`; returns (shard dir, tokenizer dir).

  Subprocesses, not their Python API: prepare tokenises with transformers' AutoTokenizer, which imports
  torch when it is installed, and nothing in this process may import torch.
  """
  bench, shards = os.path.join(root, "bench"), os.path.join(root, "shards")
  subprocess.run([sys.executable, "-m", "vlatent_jax.data.synthetic", "--out", bench, "--seed", "0",
                  "--train", str(num_videos), "--val", "0", "--test", "0", "--frames", str(FRAMES),
                  "--size", str(size), "--fps", str(FPS)], check=True, stdout=subprocess.DEVNULL)
  subprocess.run([sys.executable, "-m", "vlatent_jax.data.prepare", "--manifest", os.path.join(bench, "train.jsonl"),
                  "--out", shards, "--tokenizer", os.path.join(bench, "tokenizer"), "--workers", "2",
                  "--fps", str(FPS), "--max-frames", str(FRAMES), "--min-pixels", str(MIN_PIXELS),
                  "--max-pixels", str(MAX_PIXELS)], check=True)
  with open(os.path.join(shards, "report.json")) as f:
    report = json.load(f)
  if report["written"] != num_videos:
    raise RuntimeError(f"prepare wrote {report['written']} of {num_videos} examples: {report['skipped']}")
  return shards, os.path.join(bench, "tokenizer")


def video_items(shards: str) -> list[dict]:
  """(mp4 path, prompt ids, answer ids) of every record: what the on-the-fly path starts from."""
  import grain

  from vlatent_jax.data import records
  from vlatent_jax.data.pipeline import shard_paths

  source = grain.sources.ArrayRecordDataSource(shard_paths(shards))
  items = []
  for i in range(len(source)):
    r = records.decode(source[i])
    items.append({"path": r["meta"]["video"], "prompt_ids": r["prompt_ids"].tolist(),
                  "answer_ids": r["answer_ids"].tolist(), "grid": r["video_grid_thw"][0].tolist()})
  return items


def rate(next_batch, batch: int, batches_per_pass: int, passes: int) -> float:
  """Median examples/s over `passes` timed passes of `batches_per_pass` batches."""
  times = []
  for _ in range(passes):
    t = time.perf_counter()
    for _ in range(batches_per_pass):
      next_batch()
    times.append(time.perf_counter() - t)
  return batch * batches_per_pass / statistics.median(times)


def pipeline_rate(shards: str, mc, args, workers: int) -> float:
  from vlatent_jax.train.batch import make_dataset

  it = iter(make_dataset(shards, model_config=mc, num_latents=K, batch_size=args.batch, max_answer_len=MAX_ANSWER,
                         seed=0, num_workers=workers, process_index=0, process_count=1,
                         read_options=read_options()))
  try:
    for _ in range(2):  # warm-up: worker start-up, first reads
      next(it)
    return rate(lambda: next(it), args.batch, 16, 3)
  finally:
    it.close()  # stop its threads/processes before the next measurement


@dataclasses.dataclass(frozen=True)
class DecodeVideo:
  """Item (mp4 path + token ids) -> DecodedExample: decord read + preprocess.process_video (float32)."""
  video_cfg: object

  def __call__(self, item: dict):
    from vlatent_jax.data import preprocess
    from vlatent_jax.data.collate import Example
    from vlatent_jax.data.pipeline import DecodedExample
    from vlatent_jax.data.video import read_frames

    frames, fps = read_frames(item["path"], fps=FPS, max_frames=FRAMES)  # prepare's frame policy
    v = preprocess.process_video(frames, fps, self.video_cfg)
    return DecodedExample(item["path"], Example(item["prompt_ids"], item["answer_ids"], v["pixel_values_videos"],
                                                v["video_grid_thw"], v["second_per_grid_ts"]))


def on_the_fly_rates(items: list[dict], mc, video_cfg, args) -> tuple[float, float]:
  """examples/s decoding the mp4s: (sequential loop, batch after batch; in Grain exactly like (a))."""
  import grain

  from vlatent_jax.data.curriculum import TargetSchedule
  from vlatent_jax.data.pipeline import DEFAULT_PROMPT_BUCKETS, Collate
  from vlatent_jax.train.batch import ModelBatch

  decode, batch_fn = DecodeVideo(video_cfg), Collate(ModelBatch(mc), TargetSchedule(K), MAX_ANSWER,
                                                     DEFAULT_PROMPT_BUCKETS)
  cursor = [0]

  def next_batch():  # decord read + process_video per example, then collate, in this thread
    start, cursor[0] = cursor[0], cursor[0] + args.batch
    return batch_fn([decode(items[i % len(items)]) for i in range(start, start + args.batch)])

  next_batch()  # warm-up
  sequential = rate(next_batch, args.batch, 2, 3)
  ds = (grain.MapDataset.source(items).seed(0).shuffle().repeat().map(decode)
        .batch(args.batch, drop_remainder=True, batch_fn=batch_fn).to_iter_dataset(read_options()))
  it = iter(ds)
  try:
    next(it)  # warm-up
    return sequential, rate(lambda: next(it), args.batch, 4, 3)
  finally:
    it.close()


def train_rate(shards: str, config, args) -> tuple[float, float]:
  """(examples/s, step seconds) of the tiny videolatent train step on a pipeline batch, after warm-up."""
  import jax
  import jax.numpy as jnp

  from vlatent_jax.config import model_config
  from vlatent_jax.train.batch import make_dataset
  from vlatent_jax.train.setup import build_model, init_train_state
  from vlatent_jax.train.step import make_train_step

  mc = model_config(config.model, config.latent)
  graphdef, params, rest = build_model(config, mc, 0)
  state, tx, schedule = init_train_state(config, params)
  step = make_train_step(graphdef, rest, config, tx, schedule)
  it = iter(make_dataset(shards, model_config=mc, num_latents=K, batch_size=args.batch, max_answer_len=MAX_ANSWER,
                         seed=0, process_index=0, process_count=1))
  batch = jax.tree.map(jnp.asarray, next(it))
  it.close()
  holder = {"state": state}

  def run():
    holder["state"], metrics = step(holder["state"], batch, jax.random.key(0))
    jax.block_until_ready(metrics)

  run()  # compile
  times = []
  for _ in range(5):
    t = time.perf_counter()
    run()
    times.append(time.perf_counter() - t)
  seconds = statistics.median(times)
  return args.batch / seconds, seconds


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--videos", type=int, default=64)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--workers", type=int, default=2)
  p.add_argument("--size", type=int, default=56, help="frame height and width (even)")
  p.add_argument("--json", metavar="OUT")
  args = p.parse_args(argv)

  from vlatent_jax.config import model_config
  from vlatent_jax.data.pipeline import processor_config, shard_paths

  t0 = time.perf_counter()
  with tempfile.TemporaryDirectory() as root:
    shards, tokenizer_dir = build(root, args.videos, args.size)
    built = time.perf_counter() - t0
    shard_bytes = sum(os.path.getsize(p) for p in shard_paths(shards))
    config = tiny_config(tokenizer_dir, args.batch)
    mc = model_config(config.model, config.latent)
    items = video_items(shards)
    fly, fly_grain = on_the_fly_rates(items, mc, processor_config(shards), args)
    local = pipeline_rate(shards, mc, args, 0)
    workers = pipeline_rate(shards, mc, args, args.workers) if args.workers else local
    train, step_s = train_rate(shards, config, args)

  if "torch" in sys.modules:
    raise RuntimeError("the data path imported torch")
  pipeline = max(local, workers)
  speedup, equal, headroom = pipeline / fly, local / fly_grain, pipeline / train
  print(f"{args.videos} clips of {FRAMES} frames at {args.size}x{args.size} px (grid {items[0]['grid']}), "
        f"batch {args.batch}, {os.cpu_count()} CPUs; generated + prepared in {built:.1f} s "
        f"({shard_bytes / 2 ** 20:.1f} MiB of shards)")
  rows = [("(a) shards, Grain, 0 workers", local), (f"(b) shards, Grain, {args.workers} workers", workers),
          ("(c) mp4 on the fly, sequential decode + collate", fly),
          ("(c') mp4 on the fly, Grain, 0 workers (as a)", fly_grain),
          (f"(d) train step, tiny videolatent, {step_s * 1e3:.0f} ms", train)]
  print(f"{'source':<48}{'examples/s':>12}")
  for name, value in rows:
    print(f"{name:<48}{value:>12.1f}")
  print(f"shards pipeline / on the fly (max(a, b) / c): {speedup:.1f}x "
        f"(target >= 10x: {'PASS' if speedup >= 10 else 'MISS'}); same Grain machinery (a / c'): {equal:.1f}x")
  print(f"shards pipeline / train step (max(a, b) / d): {headroom:.1f}x (target > 1x, never the bottleneck: "
        f"{'PASS' if headroom > 1 else 'MISS'})")
  print(f"total {time.perf_counter() - t0:.1f} s")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"args": vars(args), "train_step_s": step_s,
                 "examples_per_s": {"shards_0_workers": local, "shards_workers": workers, "on_the_fly": fly,
                                    "on_the_fly_grain": fly_grain, "train_step": train},
                 "pipeline_over_on_the_fly": speedup, "shards_over_on_the_fly_same_machinery": equal,
                 "pipeline_over_train": headroom}, f, indent=2)


if __name__ == "__main__":
  main()
