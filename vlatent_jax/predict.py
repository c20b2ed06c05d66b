"""Answer one question about one video: `python -m vlatent_jax.predict --ckpt C --video V --question Q`.

  python -m vlatent_jax.predict --ckpt C --video clip.mp4 --question "Which colour came first?"
      [--options red,blue,green] [--question-type "multiple choice"] [--mode videolatent|sft|cot|continuous_thought]
      [--num-latents K] [--fps F] [--max-frames N] [--max-new-tokens 16] [--repeats 1] [--json]
      [--start S] [--end E] [--stop-early | --no-stop-early] [--mesh data=1,fsdp=8,tensor=1] [--scan-layers]

C is a vlatent_jax checkpoint or an HF Qwen2.5-VL folder; the video a file (mp4, webm, avi, ..) or a folder
of frame images (--folder-fps), sampled within --start / --end seconds when given. The prompt is the training template for the
question type (multiple choice with --options, else free-form). Prints the model's output, the extracted
answer (the option letter for multiple choice), the latent steps taken and the time to the answer: the
first call compiles, so the answer is timed again `--repeats` times and the fastest is reported. A
missing or undecodable video, or a bad checkpoint, prints one line naming it and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from vlatent_jax.data import video
from vlatent_jax.data.prompts import QUESTION_TYPES, chat_prompt
from vlatent_jax.eval import harness, scoring


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m vlatent_jax.predict", description=__doc__.splitlines()[0])
  p.add_argument("--ckpt", required=True, help="vlatent_jax checkpoint or Hugging Face Qwen2.5-VL folder")
  p.add_argument("--video", required=True, help="video file (mp4, webm, avi, ...) or a folder of frame images")
  p.add_argument("--start", type=float, help="sample frames from this second on (default: the start)")
  p.add_argument("--end", type=float, help="sample frames up to this second (default: the end)")
  p.add_argument("--folder-fps", type=float, help="frame rate of a frame-folder video (default: 3)")
  p.add_argument("--question", required=True)
  p.add_argument("--options", help="comma-separated answer options, e.g. red,blue,green (lettered A, B, C)")
  p.add_argument("--question-type", choices=QUESTION_TYPES,
                 help="prompt template (default: multiple choice with --options, else free-form)")
  p.add_argument("--mode", choices=harness.MODES, help="default: the checkpoint's training mode, else by model")
  p.add_argument("--num-latents", type=int, help="latent steps (default: the checkpoint's, else 8)")
  p.add_argument("--fps", type=float, help="frames sampled per second (default: the checkpoint's, else 2)")
  p.add_argument("--max-frames", type=int, help="cap on frames (default: the checkpoint's, else 16)")
  p.add_argument("--num-frames", type=int, help="a fixed number of evenly spaced frames instead of --fps")
  p.add_argument("--max-new-tokens", type=int, help="answer tokens (default: the checkpoint's training target "
                 f"length, else {harness.DEFAULT_MAX_NEW_TOKENS})")
  p.add_argument("--cot-tokens", type=int, help="--mode cot: reasoning tokens forced before the answer (default: 0 "
                 f"for a model trained in mode cot, else {harness.DEFAULT_COT_TOKENS})")
  p.add_argument("--stop-early", action=argparse.BooleanOptionalAction, default=None,
                 help="end latent steps once the model predicts <|latent_end|> (default: the checkpoint's "
                 "latent.stop_early, else off)")
  p.add_argument("--repeats", type=int, default=1, help="timed runs after the first (compiling) call; 0: none")
  p.add_argument("--tokenizer", help="tokenizer folder (default: --ckpt)")
  p.add_argument("--min-pixels", type=int, help="per-frame pixel budget (default: checkpoint / tokenizer folder)")
  p.add_argument("--max-pixels", type=int, help="per-frame pixel budget (default: checkpoint / tokenizer folder)")
  p.add_argument("--dtype", choices=("bfloat16", "float32", "float16"), help="default: the stored dtype")
  p.add_argument("--mesh", help="split the model over the devices, e.g. data=1,fsdp=8,tensor=1 (fsdp: parameters "
                 "split, tensor: heads / MLP / vocabulary split, data x fsdp: the batch split); default: one device")
  p.add_argument("--scan-layers", action="store_true",
                 help="run the layers as one scan over stacked parameters (faster compiles, per-layer FSDP gather)")
  p.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
  return p


def parse_args(argv=None) -> argparse.Namespace:
  p = _parser()
  args = p.parse_args(argv)
  args.options = [o.strip() for o in args.options.split(",") if o.strip()] if args.options else None
  args.question_type = args.question_type or ("multiple choice" if args.options else "free-form")
  if args.question_type == "multiple choice" and not args.options:
    p.error("--question-type 'multiple choice' needs --options")
  for name in ("num_latents", "max_frames", "num_frames", "max_new_tokens"):
    if getattr(args, name) is not None and getattr(args, name) < 1:
      p.error(f"--{name.replace('_', '-')} must be >= 1")
  if args.repeats < 0 or (args.cot_tokens or 0) < 0 or (args.fps is not None and args.fps <= 0):
    p.error("--repeats and --cot-tokens must be >= 0, --fps > 0")
  if (args.folder_fps is not None and args.folder_fps <= 0) or (
      args.start is not None and args.end is not None and args.end <= args.start):
    p.error("--folder-fps must be > 0 and --end after --start")
  if args.mesh is not None:
    try:
      harness.parse_mesh(args.mesh)
    except ValueError as e:
      p.error(str(e))
  return args


def load_inputs(args):
  """(model, processor, settings, frames, fps, decode seconds); bad input raises OSError / ValueError."""
  video.check_file(args.video)  # a missing or cut-off file fails before the model loads
  model, processor = harness.load(args.ckpt, args.tokenizer, args.min_pixels, args.max_pixels, args.dtype,
                                  mesh=args.mesh, scan_layers=args.scan_layers)
  settings = harness.resolve_settings(
      model, args.mode, args.num_latents, {"fps": args.fps, "max_frames": args.max_frames, "num_frames": args.num_frames})
  settings.update(harness.resolve_budget(model, settings["mode"], args.max_new_tokens, args.cot_tokens,
                                         args.stop_early))
  window = None if args.start is None and args.end is None else (args.start, args.end)
  t0 = time.perf_counter()
  frames, fps = harness.decode_task((args.video, harness.frame_policy(settings["frames"]), window, args.folder_fps))
  return model, processor, settings, frames, fps, time.perf_counter() - t0


def predict(args, model, processor, settings, frames, fps, decode_s) -> dict:
  text = chat_prompt(processor.tokenizer, args.question, args.question_type, args.options)
  gen = {**{k: settings[k] for k in harness.GENERATION_KEYS},
         "return_info": True}

  def answer():
    t0 = time.perf_counter()
    inputs = processor([text], videos=[frames], fps=[fps])
    tokens, info = model.generate(**inputs, **gen)
    return processor.decode(tokens)[0], int(info["latent_steps"][0]), time.perf_counter() - t0

  output, steps, first_s = answer()
  times = [answer()[2] for _ in range(args.repeats)]
  extracted = scoring.extract_answer(output)
  if args.question_type == "multiple choice":
    extracted = scoring.option_letter(extracted, args.options) or extracted
  return {"answer": extracted, "output": output, "latent_steps": steps,
          "time_to_answer_s": min(times) if times else first_s, "first_call_s": first_s, "decode_s": decode_s,
          "mode": settings["mode"], "num_latents": settings["num_latents"] if "latent" in settings["mode"] else 0,
          "stop_early": settings["stop_early"],
          "frames": int(frames.shape[0]), "fps": fps}


def main(argv=None) -> int:
  args = parse_args(argv)
  try:  # bad input names itself in one line (VideoError and ConfigError are ValueErrors)
    loaded = load_inputs(args)
  except (OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  result = predict(args, *loaded)
  if args.json:
    print(json.dumps(result))
  else:
    print(f"answer: {result['answer']}")
    if result["output"].strip() != result["answer"]:
      print(f"output: {result['output']!r}")
    print(f"latent steps: {result['latent_steps']} (mode {result['mode']})")
    print(f"time to answer: {result['time_to_answer_s']:.3f} s (first call, with compilation: "
          f"{result['first_call_s']:.2f} s; video decoding {result['decode_s']:.2f} s, {result['frames']} frames)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
