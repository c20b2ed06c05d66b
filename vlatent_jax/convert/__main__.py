"""Command line: convert between Hugging Face Qwen2.5-VL checkpoints and vlatent_jax checkpoints.

  python -m vlatent_jax.convert hf-to-jax --hf-dir D --out C [--dtype bfloat16|float32|float16]
  python -m vlatent_jax.convert jax-to-hf --ckpt C --out D2 [--max-shard-size 2GB]

Bad input (missing directory, unsupported architecture, unknown key, shape
mismatch, truncated or damaged file, existing output) prints one line to
stderr, naming the file, and exits with status 2.
"""

from __future__ import annotations

import argparse
import re
import sys
import time

DTYPES = ("bfloat16", "float32", "float16")
_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_size(text: str) -> int:
  """'2GB' -> 2_000_000_000 (decimal units like transformers; KiB/MiB/GiB binary)."""
  m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
  if not m or m.group(2).upper() not in _UNITS:
    raise argparse.ArgumentTypeError(f"invalid size {text!r} (e.g. 2GB, 500MB, 200KB)")
  size = int(float(m.group(1)) * _UNITS[m.group(2).upper()])
  if size <= 0:
    raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
  return size


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m vlatent_jax.convert", description=__doc__.splitlines()[0])
  sub = p.add_subparsers(dest="command", required=True)
  a = sub.add_parser("hf-to-jax", help="Hugging Face directory -> vlatent_jax checkpoint")
  a.add_argument("--hf-dir", required=True, help="directory with config.json and *.safetensors")
  a.add_argument("--out", required=True, help="checkpoint directory to create")
  a.add_argument("--dtype", choices=DTYPES, default=None, help="cast weights (default: keep stored dtype)")
  a.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  b = sub.add_parser("jax-to-hf", help="vlatent_jax checkpoint -> Hugging Face directory")
  b.add_argument("--ckpt", required=True, help="vlatent_jax checkpoint directory")
  b.add_argument("--out", required=True, help="Hugging Face directory to create")
  b.add_argument("--max-shard-size", type=parse_size, default=parse_size("2GB"))
  b.add_argument("--overwrite", action="store_true", help="replace an existing --out")
  return p


def _hf_to_jax(args) -> str:
  from vlatent_jax.checkpoint import save_checkpoint
  from vlatent_jax.convert.hf import flatten, read_hf
  config, params, meta = read_hf(args.hf_dir, args.dtype)
  path = save_checkpoint(args.out, config, params, meta, overwrite=args.overwrite)
  leaves = flatten(params).values()
  return f"wrote vlatent_jax checkpoint {path}: {len(leaves)} tensors, {sum(a.nbytes for a in leaves)} bytes"


def _jax_to_hf(args) -> str:
  from vlatent_jax.checkpoint import load_checkpoint
  from vlatent_jax.convert.hf import write_hf
  config, params, meta = load_checkpoint(args.ckpt)
  summary = write_hf(config, params, args.out, meta, max_shard_bytes=args.max_shard_size,
                     overwrite=args.overwrite)
  return (f"wrote Hugging Face checkpoint {args.out}: {summary['tensors']} tensors, {summary['bytes']} bytes "
          f"in {summary['shards']} shard(s)")


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  start = time.perf_counter()
  from safetensors import SafetensorError
  # ConfigError and CheckpointError (unreadable safetensors / orbax files) are ValueErrors;
  # FileNotFound/FileExists are OSErrors; a bare SafetensorError could only come from writing.
  try:
    message = _hf_to_jax(args) if args.command == "hf-to-jax" else _jax_to_hf(args)
  except (OSError, KeyError, ValueError, SafetensorError) as e:
    text = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    print(f"error: {text}", file=sys.stderr)
    return 2
  print(f"{message} in {time.perf_counter() - start:.1f} s")
  return 0


def _drop_closed_loop_noise(unraisable, default=sys.unraisablehook) -> None:
  """After a failed orbax restore, tensorstore reads still in flight call back into the closed
  asyncio loop and print 'Event loop is closed' tracebacks; the real error is already reported."""
  e = unraisable.exc_value
  if not (isinstance(e, RuntimeError) and str(e) == "Event loop is closed"):
    default(unraisable)


if __name__ == "__main__":
  sys.unraisablehook = _drop_closed_loop_noise  # this process only: not when main() is called as a function
  sys.exit(main())
