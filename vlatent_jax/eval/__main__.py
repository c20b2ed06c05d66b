"""Command line: evaluate a checkpoint on a video QA benchmark.

  python -m vlatent_jax.eval --ckpt C --bench NAME --data PATH [--split test] [--limit N]
      [--mode videolatent|sft|cot|continuous_thought] [--num-latents K] [--batch-size 8] [--out DIR]
      [--fps F] [--max-frames N] [--num-frames N] [--max-new-tokens 16] [--decode-workers 1]
      [--stop-early | --no-stop-early] [--mesh data=1,fsdp=8,tensor=1] [--scan-layers]

NAME: embedded, video_r1, mvbench, videomme, tempcompass, vsibench, mmvu, videommmu (see readers.py for
each file layout). Unset mode / latent steps / frame sampling come from the checkpoint (what training
stored), else the benchmark (embedded: benchmark.json's read_with), else videolatent-or-sft, 8, 2 fps x 16.
Writes <out>/<bench>_<mode>.json (summary, the benchmark's official aggregate, settings, per-question records,
skipped videos, rows skipped for bad data), .md (tables) and .predictions.jsonl ({"id", "output"} per line,
which `python -m vlatent_jax.eval.score` scores without a model); default out: <ckpt>_eval beside the
checkpoint (./eval_<name> if that is not writable).
Bad input prints one line and exits 2; a run that answers nothing exits 1. --mesh splits the parameters
over the devices (FSDP over fsdp, tensor parallel over tensor) and each batch over data x fsdp; a
--batch-size that is not a multiple of data x fsdp is padded for the model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vlatent_jax.eval import harness, official, predictions, readers, report


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m vlatent_jax.eval", description=__doc__.splitlines()[0])
  p.add_argument("--ckpt", required=True, help="vlatent_jax checkpoint or Hugging Face Qwen2.5-VL folder")
  p.add_argument("--bench", required=True, type=str.lower, choices=readers.BENCHMARKS)
  p.add_argument("--data", required=True, help="the benchmark's file or folder (embedded: a .jsonl or the folder)")
  p.add_argument("--split", default="test", help="embedded benchmark split when --data is its folder")
  p.add_argument("--limit", type=int, help="evaluate the first N questions")
  p.add_argument("--mode", choices=harness.MODES, help="default: the checkpoint's training mode, else by model")
  p.add_argument("--num-latents", type=int, help="latent steps (default: the checkpoint's, else 8)")
  p.add_argument("--batch-size", type=int, default=8, help="questions per generate call")
  p.add_argument("--out", help="results folder (default: <ckpt>_eval)")
  p.add_argument("--fps", type=float, help="frames sampled per second of video")
  p.add_argument("--max-frames", type=int, help="cap on frames per video")
  p.add_argument("--num-frames", type=int, help="a fixed number of evenly spaced frames instead of --fps")
  p.add_argument("--max-new-tokens", type=int, help="answer tokens (default: the checkpoint's training target "
                 f"length, else {harness.DEFAULT_MAX_NEW_TOKENS})")
  p.add_argument("--cot-tokens", type=int, help="--mode cot: reasoning tokens forced before the answer (default: 0 "
                 f"for a model trained in mode cot, else {harness.DEFAULT_COT_TOKENS})")
  p.add_argument("--tokenizer", help="tokenizer folder (default: --ckpt)")
  p.add_argument("--min-pixels", type=int, help="per-frame pixel budget (default: checkpoint / tokenizer folder)")
  p.add_argument("--max-pixels", type=int, help="per-frame pixel budget (default: checkpoint / tokenizer folder)")
  p.add_argument("--stop-early", action=argparse.BooleanOptionalAction, default=None,
                 help="end latent steps once the model predicts <|latent_end|> (default: the checkpoint's "
                 "latent.stop_early, else off)")
  p.add_argument("--decode-workers", type=int, default=1, help="video decode processes (0: decode inline)")
  p.add_argument("--decode-timeout", type=float, default=120.0, help="seconds per video before it is skipped")
  p.add_argument("--dtype", choices=("bfloat16", "float32", "float16"), help="default: the stored dtype")
  p.add_argument("--mesh", help="split the model over the devices, e.g. data=1,fsdp=8,tensor=1 (fsdp: parameters "
                 "split, tensor: heads / MLP / vocabulary split, data x fsdp: the batch split); default: one device")
  p.add_argument("--scan-layers", action="store_true",
                 help="run the layers as one scan over stacked parameters (faster compiles, per-layer FSDP gather)")
  p.add_argument("--no-progress", action="store_true")
  return p


def _check(p: argparse.ArgumentParser, args) -> None:
  for name in ("limit", "num_latents", "batch_size", "max_frames", "num_frames", "max_new_tokens"):
    value = getattr(args, name)
    if value is not None and value < 1:
      p.error(f"--{name.replace('_', '-')} must be >= 1")
  if (args.fps is not None and args.fps <= 0) or args.decode_timeout <= 0 or (args.cot_tokens or 0) < 0:
    p.error("--fps and --decode-timeout must be > 0, --cot-tokens >= 0")
  if args.mesh is not None:
    try:
      harness.parse_mesh(args.mesh)
    except ValueError as e:
      p.error(str(e))


def embedded_frames(data: str) -> dict | None:
  """The embedded benchmark's sampling (benchmark.json: video.read_with) beside its manifest."""
  folder = data if os.path.isdir(data) else os.path.dirname(os.path.abspath(data))
  try:
    with open(os.path.join(folder, "benchmark.json")) as f:
      return json.load(f)["video"]["read_with"]
  except (OSError, KeyError, TypeError, json.JSONDecodeError):
    return None


def default_out(ckpt: str) -> str:
  ckpt = os.path.abspath(ckpt).rstrip(os.sep)
  if os.access(os.path.dirname(ckpt), os.W_OK):
    return ckpt + "_eval"
  return os.path.join(os.getcwd(), f"eval_{os.path.basename(ckpt)}")


def _inputs(args):
  """Questions, malformed rows, model, processor and settings; bad input raises OSError / ValueError / RuntimeError."""
  questions, bad_rows = readers.read(args.bench, args.data, args.limit, split=args.split)
  report.warn_skipped(bad_rows, args.data)
  if not questions:
    raise ValueError(f"no usable questions in {args.data} ({len(bad_rows)} rows skipped for bad data)")
  model, processor = harness.load(args.ckpt, args.tokenizer, args.min_pixels, args.max_pixels, args.dtype,
                                  mesh=args.mesh, scan_layers=args.scan_layers)
  frames = {"fps": args.fps, "max_frames": args.max_frames, "num_frames": args.num_frames}
  settings = harness.resolve_settings(model, args.mode, args.num_latents, frames,
                                      embedded_frames(args.data) if args.bench == "embedded" else None)
  return questions, bad_rows, model, processor, settings


def run(args, questions, bad_rows, model, processor, settings) -> int:
  results = harness.evaluate(model, processor, questions, mode=settings["mode"], num_latents=settings["num_latents"],
                             batch_size=args.batch_size, frames=settings["frames"], progress=not args.no_progress,
                             max_new_tokens=args.max_new_tokens, cot_tokens=args.cot_tokens,
                             decode_workers=args.decode_workers, decode_timeout=args.decode_timeout,
                             stop_early=args.stop_early)
  bench = readers.benchmark_name(args.bench)
  results = {"benchmark": args.bench, "data": os.path.abspath(args.data), "checkpoint": os.path.abspath(args.ckpt),
             **({"split": args.split} if args.bench == "embedded" and os.path.isdir(args.data) else {}),
             "official": official.aggregate(bench, results["records"]),
             **results, "bad_rows": [row._asdict() for row in bad_rows]}
  name = f"{args.bench}_{settings['mode']}"
  out = args.out or default_out(args.ckpt)
  json_path, md_path = report.write(results, out, name,
                                    f"{args.bench} ({os.path.basename(os.path.abspath(args.ckpt))})")
  pred_path = predictions.write(os.path.join(out, f"{name}.predictions.jsonl"), results["records"])
  with open(md_path) as f:
    print(f.read())
  print(f"wrote {json_path}, {md_path} and {pred_path}")
  return 0 if results["n"] else 1


def main(argv=None) -> int:
  p = _parser()
  args = p.parse_args(argv)
  _check(p, args)
  try:  # bad input names itself in one line (ConfigError is a ValueError); evaluation errors keep their traceback
    loaded = _inputs(args)
  except (OSError, ValueError, RuntimeError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  return run(args, *loaded)


if __name__ == "__main__":
  sys.exit(main())
