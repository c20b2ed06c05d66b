"""Manifest -> ArrayRecord shards of pre-decoded, tokenised examples (decode every video once, not every epoch).

    python -m vlatent_jax.data.prepare --manifest M --out DIR [--tokenizer PATH] [--workers N]
        [--format jsonl|video_r1|llava] [--decoder decord|pyav] [--fps 2.0] [--max-frames 16]
        [--num-frames K] [--min-pixels P] [--max-pixels P] [--shard-size 256] [--timeout 60]

Writes into DIR:
    shard-00000-of-000NN.array_record  one records.encode blob per example, in manifest order ("group_size:1")
    spec.json      what the Grain pipeline reads: processor config, tokenizer, frame policy, shards and counts
    report.json    written count, skipped rows (line, video, reason, kind), counts, fallbacks, seconds, options
    progress/      one summary per finished shard (what a resumed run needs for its report)

Usable rows go to shards by position (shard k holds rows k*S .. k*S+S-1), so
shard contents depend only on the inputs, never on worker scheduling or count.
A shard is written under a temporary name and renamed once complete; a rerun
with the same inputs keeps complete shards and rewrites the rest, byte for byte
identical. Videos are decoded and patchified in worker processes (video.WorkerPool)
with a per-video timeout; a row whose video is missing, empty, truncated, corrupt
or hangs is skipped and reported, every other row is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import math
import os
import re
import sys
import time
from collections import Counter

import numpy as np

from vlatent_jax.data import manifest as manifest_lib
from vlatent_jax.data import preprocess, video
from vlatent_jax.data.prompts import chat_prompt, reasoning_texts

VIDEO_TOKEN, END_TOKEN = "<|video_pad|>", "<|im_end|>"
SPEC_VERSION = 1
SHARD_RE = re.compile(r"^shard-\d{5}-of-\d{5}\.array_record$")
HANG_ENV = "VLATENT_PREPARE_TEST_HANG"  # test hook: workers hang (holding the GIL) on videos whose name contains it
DEDUP_WINDOW = 8  # a video repeated within this many rows is decoded once
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
                   "added_tokens.json", "chat_template.jinja", "chat_template.json", "preprocessor_config.json",
                   "video_preprocessor_config.json")


def shard_name(k: int, n: int) -> str:
  return f"shard-{k:05d}-of-{n:05d}.array_record"


# ------------------------------------------------------------------ worker side

def _hang_holding_gil() -> None:
  import ctypes

  ctypes.PyDLL(None).sleep(3600)  # a C call made through PyDLL keeps the GIL, like a stuck decord decode


def decode_task(payload: tuple) -> dict:
  """Runs in a worker: decode the sampled frames, resize and patchify them (uint8)."""
  path, policy, decoder, config, hang = payload
  if hang and hang in os.path.basename(path):
    _hang_holding_gil()
  out = video.decode(path, policy, decoder)
  patches, grid = preprocess.patchify_uint8(out.frames, config)
  return {"patches": patches, "grid": grid, "fps": out.fps, "decoder": out.decoder, "fallback_from": out.fallback_from}


# ------------------------------------------------------------------ parent side

class PromptBuilder:
  """prompt_ids (chat template, `<|video_pad|>` expanded to the merged-token count) and answer_ids (+ <|im_end|>)."""

  def __init__(self, tokenizer_dir: str, merge_size: int):
    from transformers import AutoTokenizer

    self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    self.merge_size = merge_size
    vocab = self.tokenizer.get_vocab()
    missing = [t for t in (VIDEO_TOKEN, END_TOKEN) if t not in vocab]
    if missing:
      raise SystemExit(f"--tokenizer {tokenizer_dir} lacks the special tokens {missing}")
    self.video_id, self.end_id = vocab[VIDEO_TOKEN], vocab[END_TOKEN]

  def prompt_ids(self, row: manifest_lib.Row, grid: np.ndarray) -> np.ndarray:
    count = int(np.prod(grid)) // self.merge_size ** 2
    pieces = chat_prompt(self.tokenizer, row.question, row.question_type, row.options).split(VIDEO_TOKEN)
    text = pieces[0] + "".join(VIDEO_TOKEN * count + p for p in pieces[1:])  # as processor.py expands
    # Qwen's tokenizer adds no BOS; add_special_tokens=False keeps any other tokenizer from adding one either.
    ids = np.asarray(self.tokenizer(text, add_special_tokens=False)["input_ids"], np.int32)
    if int((ids == self.video_id).sum()) != count * (len(pieces) - 1):
      raise ValueError(f"prompt holds {(ids == self.video_id).sum()} video tokens, expected {count}")
    return ids

  def answer_ids(self, answer: str) -> np.ndarray:
    return np.asarray(self.tokenizer(answer, add_special_tokens=False)["input_ids"] + [self.end_id], np.int32)

  def reasoning_ids(self, row: manifest_lib.Row) -> list[np.ndarray] | None:
    """Targets with the first s rationale steps dropped, s = 0..n (`prompts.reasoning_texts`); None without one."""
    if not row.rationale:
      return None
    return [self.answer_ids(text) for text in reasoning_texts(row.rationale, row.answer)]


def file_sha256(path: str) -> str:
  """Hex SHA-256 of a file, read in 1 MiB blocks."""
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _write_json(path: str, obj) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


def _processor_config(args, tokenizer_dir: str) -> preprocess.VideoProcessorConfig:
  try:
    config = preprocess.VideoProcessorConfig.from_pretrained_dir(tokenizer_dir)
  except FileNotFoundError:
    config = preprocess.VideoProcessorConfig()
  budget = {k: v for k, v in (("min_pixels", args.min_pixels), ("max_pixels", args.max_pixels)) if v is not None}
  config = dataclasses.replace(config, **budget)
  if not 0 < config.min_pixels <= config.max_pixels:
    raise SystemExit(f"need 0 < --min-pixels <= --max-pixels, got {config.min_pixels}, {config.max_pixels}")
  return config


def _fingerprint(args, manifest_path, tokenizer_dir, config, policy) -> str:
  from vlatent_jax.data import records

  inputs = {
      "manifest": [manifest_path, file_sha256(manifest_path)], "format": args.format, "decoder": args.decoder,
      "policy": dataclasses.asdict(policy), "processor": dataclasses.asdict(config), "shard_size": args.shard_size,
      "tokenizer": sorted((n, file_sha256(os.path.join(tokenizer_dir, n))) for n in TOKENIZER_FILES
                          if os.path.isfile(os.path.join(tokenizer_dir, n))),
      "record_version": records.VERSION, "spec_version": SPEC_VERSION}
  return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]


def _check_out_dir(out: str, names: list[str], fingerprint: str) -> None:
  """Refuses to mix shards from other inputs or options into `out` (resuming needs the same ones)."""
  stale = [f for f in sorted(os.listdir(out)) if SHARD_RE.match(f) and f not in names]
  progress = os.path.join(out, "progress")
  for f in sorted(os.listdir(progress)) if os.path.isdir(progress) else []:
    if f.endswith(".json"):
      with open(os.path.join(progress, f)) as fh:
        if json.load(fh).get("fingerprint") != fingerprint:
          stale.append(os.path.join("progress", f))
  if stale:
    raise SystemExit(f"{out} holds shards prepared from other inputs or options ({', '.join(stale[:3])}); "
                     "use a new --out or remove them")


def _load_progress(out: str, name: str, fingerprint: str) -> dict | None:
  """The summary of a complete shard (its file and its summary both present), else None."""
  path = os.path.join(out, "progress", name.replace(".array_record", ".json"))
  if not (os.path.isfile(os.path.join(out, name)) and os.path.isfile(path)):
    return None
  with open(path) as f:
    summary = json.load(f)
  return summary if summary.get("fingerprint") == fingerprint else None


def _ordered_results(pool: video.WorkerPool, items: list, payload):
  """(shard, row, ok, value) in `items` ((shard, row)) order; a video repeated within DEDUP_WINDOW rows is
  decoded once (Video-R1 and LLaVA data ask several questions about one video)."""
  rows = [row for _, row in items]
  source, last = [], {}
  for i, row in enumerate(rows):
    j = last.get(row.video)
    if j is None or i - j > DEDUP_WINDOW:
      last[row.video] = j = i
    source.append(j)
  results = pool.imap_ordered(payload(rows[i]) for i, j in enumerate(source) if i == j)
  cache = {}
  for i, (k, row) in enumerate(items):
    if source[i] == i:
      cache[i] = next(results)
    yield (k, row, *cache[source[i]])
    for old in [old for old in cache if old < i - DEDUP_WINDOW]:
      del cache[old]


def _write_shards(args, out, todo, names, fingerprint, config, policy, builder) -> int:
  """Decodes and writes every shard in `todo` ({shard index: rows}); returns the number of worker restarts."""
  from array_record.python.array_record_module import ArrayRecordWriter

  from vlatent_jax.data import records

  task = importlib.import_module("vlatent_jax.data.prepare").decode_task  # by module name, also under `-m`
  hang = os.environ.get(HANG_ENV) or None
  flat = [(k, row) for k in sorted(todo) for row in todo[k]]
  current, writer, summary = None, None, None

  def finish():
    writer.close()
    name = names[current]
    _write_json(os.path.join(out, "progress", name.replace(".array_record", ".json")), summary)
    os.replace(os.path.join(out, name + ".tmp"), os.path.join(out, name))
    print(f"[prepare] {name}: {summary['count']} written, {len(summary['skipped'])} skipped", file=sys.stderr)

  preload = ["vlatent_jax.data.preprocess", "decord", "av"]
  with video.WorkerPool(task, args.workers, args.timeout, preload=preload) as pool:
    def payload(row):
      return row.video, policy, args.decoder, config, hang

    for k, row, ok, value in _ordered_results(pool, flat, payload):
      if k != current:
        if writer is not None:
          finish()
        current = k
        writer = ArrayRecordWriter(os.path.join(out, names[k] + ".tmp"), "group_size:1")
        summary = {"fingerprint": fingerprint, "shard": names[k], "count": 0, "skipped": [], "fallbacks": [],
                   "max_lengths": {"prompt": 0, "answer": 0, "reasoning": 0},
                   "question_types": {}, "lines": [todo[k][0].line, todo[k][-1].line]}
      if ok:
        try:
          record = {"patches": value["patches"], "video_grid_thw": value["grid"][None],
                    "second_per_grid_ts": [config.temporal_patch_size / value["fps"]],
                    "prompt_ids": builder.prompt_ids(row, value["grid"]), "answer_ids": builder.answer_ids(row.answer),
                    "reasoning_ids": builder.reasoning_ids(row),
                    "meta": {"id": row.id, "line": row.line, "video": row.video, "question": row.question,
                             "answer": row.answer, "options": row.options, "question_type": row.question_type}}
          writer.write(records.encode(record))
          lengths = summary["max_lengths"]  # what a training config must fit (data.max_prompt_len / max_answer_len)
          lengths["prompt"] = max(lengths["prompt"], len(record["prompt_ids"]))
          lengths["answer"] = max(lengths["answer"], len(record["answer_ids"]))
          if record["reasoning_ids"]:
            lengths["reasoning"] = max(lengths["reasoning"], len(record["reasoning_ids"][0]))
        except ValueError as e:
          ok, value = False, ("error", f"cannot build the example: {e}")
      if ok:
        summary["count"] += 1
        types = summary["question_types"]
        types[row.question_type] = types.get(row.question_type, 0) + 1
        if value["fallback_from"]:
          summary["fallbacks"].append({"line": row.line, "video": row.video, "decord_error": value["fallback_from"]})
      else:
        kind, reason = value
        summary["skipped"].append({"line": row.line, "video": row.video, "reason": reason, "kind": kind,
                                   "question_type": row.question_type})
    if writer is not None:
      finish()
    return pool.restarts


def prepare(args) -> dict:
  """Runs the whole preparation for parsed CLI `args`; returns the report (also written to DIR/report.json)."""
  start = time.time()
  manifest_path = os.path.abspath(args.manifest)
  rows, errors = manifest_lib.read_manifest(manifest_path, args.format)
  tokenizer_dir = os.path.abspath(args.tokenizer)
  config = _processor_config(args, tokenizer_dir)
  policy = video.FramePolicy(args.fps, args.max_frames, args.num_frames)
  fingerprint = _fingerprint(args, manifest_path, tokenizer_dir, config, policy)
  out = os.path.abspath(args.out)
  os.makedirs(os.path.join(out, "progress"), exist_ok=True)
  n = math.ceil(len(rows) / args.shard_size)
  names = [shard_name(k, n) for k in range(n)]
  _check_out_dir(out, names, fingerprint)
  summaries = {k: _load_progress(out, names[k], fingerprint) for k in range(n)}
  todo = {k: rows[k * args.shard_size:(k + 1) * args.shard_size] for k in range(n) if summaries[k] is None}
  restarts = 0
  if todo:
    builder = PromptBuilder(tokenizer_dir, config.merge_size)
    restarts = _write_shards(args, out, todo, names, fingerprint, config, policy, builder)
  summaries = [_load_progress(out, name, fingerprint) for name in names]

  skipped = [{"line": e.line, "video": e.video, "reason": e.reason, "kind": "malformed row"} for e in errors]
  skipped = sorted(skipped + [s for m in summaries for s in m["skipped"]], key=lambda s: s["line"])
  types: dict[str, dict[str, int]] = {}
  for m in summaries:
    for t, c in m["question_types"].items():
      types.setdefault(t, {"written": 0, "skipped": 0})["written"] += c
    for s in m["skipped"]:
      types.setdefault(s["question_type"], {"written": 0, "skipped": 0})["skipped"] += 1
  written = sum(m["count"] for m in summaries)
  seconds = time.time() - start
  options = {k: v for k, v in vars(args).items()}
  report = {
      "written": written, "skipped": skipped, "rows": len(rows) + len(errors),
      "skipped_by_reason": dict(sorted(Counter(s["kind"] for s in skipped).items())),
      "question_types": types, "fallbacks": [f for m in summaries for f in m["fallbacks"]],
      "shards": {"total": n, "written_now": len(todo), "kept": n - len(todo)}, "worker_restarts": restarts,
      "seconds": round(seconds, 3), "rows_per_second": round(sum(map(len, todo.values())) / max(seconds, 1e-9), 2),
      "options": {**options, "manifest": manifest_path, "out": out, "tokenizer": tokenizer_dir},
      "processor": dataclasses.asdict(config), "fingerprint": fingerprint}
  spec = {
      "version": SPEC_VERSION, "format": "array_record", "fingerprint": fingerprint, "manifest": manifest_path,
      "tokenizer": tokenizer_dir, "processor": dataclasses.asdict(config), "decoder": args.decoder,
      "fps": policy.fps, "max_frames": policy.max_frames, "num_frames": policy.num_frames,
      "frame_policy": (f"{policy.num_frames} frames evenly spaced" if policy.num_frames else
                       f"{policy.fps:g} fps, at most {policy.max_frames} frames"),
      "shards": [{"path": name, "count": m["count"]} for name, m in zip(names, summaries)],
      "num_records": written,
      "max_lengths": {k: max((m.get("max_lengths", {}).get(k, 0) for m in summaries), default=0)
                      for k in ("prompt", "answer", "reasoning")}}
  _write_json(os.path.join(out, "spec.json"), spec)
  _write_json(os.path.join(out, "report.json"), report)
  return report


def parse_args(argv=None) -> argparse.Namespace:
  p = argparse.ArgumentParser(prog="python -m vlatent_jax.data.prepare", description=__doc__.split("\n\n")[0])
  p.add_argument("--manifest", required=True, help="JSONL, or a JSON array (Video-R1)")
  p.add_argument("--out", required=True, help="output folder for shards, spec.json and report.json")
  p.add_argument("--tokenizer", help="HF tokenizer folder (default: <manifest dir>/tokenizer)")
  p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decode worker processes")
  p.add_argument("--format", choices=manifest_lib.FORMATS, help="manifest format (default: detected per row)")
  p.add_argument("--decoder", choices=video.DECODERS, default="decord", help="decord falls back to pyav per file")
  p.add_argument("--fps", type=float, default=2.0, help="frames sampled per second of video")
  p.add_argument("--max-frames", type=int, default=16, help="cap on frames per video")
  p.add_argument("--num-frames", type=int, help="a fixed number of evenly spaced frames instead of --fps")
  p.add_argument("--min-pixels", type=int, help="per-frame pixel budget (default: tokenizer dir's preprocessor config)")
  p.add_argument("--max-pixels", type=int, help="per-frame pixel budget (default: tokenizer dir's preprocessor config)")
  p.add_argument("--shard-size", type=int, default=256, help="rows per shard")
  p.add_argument("--timeout", type=float, default=60.0, help="seconds per video before its worker is killed")
  args = p.parse_args(argv)
  for name in ("workers", "max_frames", "shard_size"):
    if getattr(args, name) < 1:
      p.error(f"--{name.replace('_', '-')} must be >= 1")
  if args.num_frames is not None and args.num_frames < 1:
    p.error("--num-frames must be >= 1")
  if args.fps <= 0 or args.timeout <= 0:
    p.error("--fps and --timeout must be > 0")
  if not os.path.isfile(args.manifest):
    p.error(f"--manifest: no such file: {args.manifest}")
  if args.tokenizer is None:
    default = os.path.join(os.path.dirname(os.path.abspath(args.manifest)), "tokenizer")
    if not os.path.isdir(default):
      p.error(f"--tokenizer is required: no tokenizer folder at {default}")
    args.tokenizer = default
  elif not os.path.isdir(args.tokenizer):
    p.error(f"--tokenizer: no such folder: {args.tokenizer}")
  return args


def main(argv=None) -> int:
  report = prepare(parse_args(argv))
  print(f"[prepare] wrote {report['written']} examples in {report['shards']['total']} shards, skipped "
        f"{len(report['skipped'])} {report['skipped_by_reason']} in {report['seconds']:.1f}s", file=sys.stderr)
  return 0 if report["written"] else 1


if __name__ == "__main__":
  sys.exit(main())
