"""The embedded benchmark, generated and prepared once under a folder named by its counts.

    bench = ensure("W/data", {"train": 2000, "val": 200, "test": 400})
    bench.train, bench.val   prepared shards (pipeline.make_dataset); bench.raw: manifests, videos, tokenizer

Used by the training CLI (no `data.path`) and by the headline experiment, so both see the same data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil

# Events last 2-4 frames at 8 fps: every frame is decoded. A 1024-token vocabulary makes every word of the
# benchmark one token (prompts and rationales are shorter: every token costs compute).
FRAMES, SIZE, FPS, VOCAB_SIZE = 16, 56, 8, 1024
COUNTS = {"train": 2000, "val": 200, "test": 400}


@dataclasses.dataclass(frozen=True)
class Benchmark:
  raw: str          # synthetic.generate's folder: <split>.jsonl, videos/, tokenizer/, video_digests.txt
  train: str        # prepared train shards
  val: str          # prepared validation shards
  lengths: dict     # longest prompt / answer / rationale target in tokens over train and val
  fingerprint: str  # of the prepared shards

  @property
  def tokenizer(self) -> str:
    return os.path.join(self.raw, "tokenizer")


def ensure(root: str, counts: dict[str, int] | None = None, workers: int = 2) -> Benchmark:
  """Generates (seed 0) and prepares the benchmark under root/qa-<train>-<val>-<test> unless already there."""
  from vlatent_jax.data import prepare, synthetic

  counts = dict(counts or COUNTS)
  base = os.path.join(root, "qa-" + "-".join(str(counts.get(s, 0)) for s in ("train", "val", "test")))
  raw = os.path.join(base, "raw")
  if not os.path.isfile(os.path.join(raw, "benchmark.json")):  # written last: a half-written folder is redone
    shutil.rmtree(raw, ignore_errors=True)
    synthetic.generate(raw, seed=0, counts=counts, frames=FRAMES, size=SIZE, fps=FPS, vocab_size=VOCAB_SIZE)
  specs = {}
  for split in ("train", "val"):
    out = os.path.join(base, f"{split}_shards")
    if counts.get(split) and not os.path.isfile(os.path.join(out, "spec.json")):
      prepare.prepare(prepare.parse_args([
          "--manifest", os.path.join(raw, f"{split}.jsonl"), "--out", out, "--fps", str(FPS),
          "--max-frames", str(FRAMES), "--workers", str(workers)]))
    if counts.get(split):
      with open(os.path.join(out, "spec.json")) as f:
        specs[split] = json.load(f)
  lengths = {k: max((s["max_lengths"][k] for s in specs.values()), default=0) for k in ("prompt", "answer", "reasoning")}
  fingerprint = hashlib.sha256(json.dumps([specs[s]["fingerprint"] for s in sorted(specs)]).encode()).hexdigest()[:16]
  return Benchmark(raw, os.path.join(base, "train_shards") if "train" in specs else "",
                   os.path.join(base, "val_shards") if "val" in specs else "", lengths, fingerprint)
