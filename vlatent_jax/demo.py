"""End-to-end demo on an embedded default, no downloads: `python -m vlatent_jax.demo --workdir W`.

1. builds a tiny random Qwen2.5-VL-architecture model in JAX and a locally trained tokenizer,
2. exports it to Hugging Face format (jax-to-hf), converts it back (hf-to-jax) and loads it,
3. renders a short video clip (a red square moving right), writes it as mp4 and decodes it with decord,
4. asks a question about the clip and prints the (random-model) answer with timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
from flax import nnx

import vlatent_jax
from vlatent_jax.checkpoint import save_checkpoint
from vlatent_jax.data import preprocess
from vlatent_jax.data.processor import VideoTextProcessor
from vlatent_jax.data.tokenizer import train_tokenizer
from vlatent_jax.data.video import read_frames, write_mp4
from vlatent_jax.models.config import LLMConfig, ModelConfig, VisionConfig
from vlatent_jax.models.vlm import VideoLM

CORPUS = ["What colour is the moving square?", "Where does the square end up?", "The square moves right.",
          "red green blue yellow left right up down top bottom", "How many objects appear in the video?"]


def tiny_model_config(tokenizer) -> ModelConfig:
  ids = lambda t: tokenizer.convert_tokens_to_ids(t)  # noqa: E731
  return ModelConfig(
      vision=VisionConfig(depth=2, hidden_size=64, intermediate_size=128, num_heads=4, out_hidden_size=128,
                          fullatt_block_indexes=(1,), window_size=56),
      llm=LLMConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=2, mrope_section=(4, 6, 6), tie_word_embeddings=True),
      image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
      vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
      bos_token_id=None, eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"))


def moving_square_clip(num_frames: int = 16, size: int = 112) -> np.ndarray:
  frames = np.full((num_frames, size, size, 3), 235, np.uint8)
  for t in range(num_frames):
    x = int(t * (size - 24) / max(1, num_frames - 1))
    frames[t, 44:68, x:x + 24] = (220, 30, 30)
  return frames


def run(cmd: list[str]) -> None:
  print("$", " ".join(cmd), flush=True)
  subprocess.run(cmd, check=True)


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", default="runs/demo")
  parser.add_argument("--question", default="Where does the square end up?")
  parser.add_argument("--max-new-tokens", type=int, default=16)
  args = parser.parse_args(argv)
  os.makedirs(args.workdir, exist_ok=True)
  t0 = time.time()

  tok_dir = os.path.join(args.workdir, "tokenizer")
  tokenizer = train_tokenizer(CORPUS * 4, tok_dir, vocab_size=400)
  config = tiny_model_config(tokenizer)
  model = VideoLM(config, rngs=nnx.Rngs(0))
  params = nnx.to_pure_dict(nnx.state(model, nnx.Param))
  video_cfg = preprocess.VideoProcessorConfig(min_pixels=56 * 56, max_pixels=112 * 112)
  init_ckpt = os.path.join(args.workdir, "init_ckpt")
  save_checkpoint(init_ckpt, config, jax.tree.map(np.asarray, params),
                  meta={"video_processor": {"min_pixels": video_cfg.min_pixels, "max_pixels": video_cfg.max_pixels}},
                  tokenizer_dir=tok_dir, overwrite=True)
  print(f"[1/4] tiny random model ({sum(x.size for x in jax.tree.leaves(params)):,} params) -> {init_ckpt}")

  hf_dir, ckpt = os.path.join(args.workdir, "hf_model"), os.path.join(args.workdir, "ckpt")
  run([sys.executable, "-m", "vlatent_jax.convert", "jax-to-hf", "--ckpt", init_ckpt, "--out", hf_dir])
  run([sys.executable, "-m", "vlatent_jax.convert", "hf-to-jax", "--hf-dir", hf_dir, "--out", ckpt])
  loaded = vlatent_jax.load(ckpt)
  print(f"[2/4] round trip through Hugging Face format, loaded {ckpt}")

  video_path = os.path.join(args.workdir, "clip.mp4")
  write_mp4(moving_square_clip(), video_path, fps=8)
  frames, fps = read_frames(video_path, fps=2.0, max_frames=16)
  print(f"[3/4] wrote {video_path}; decoded {frames.shape[0]} frames at {fps:.1f} fps, {frames.shape[1:3]} px")

  processor = VideoTextProcessor(tokenizer, video_cfg)
  inputs = processor([processor.chat_prompt(args.question)], videos=[frames], fps=[fps])
  t1 = time.time()
  tokens = loaded.generate(**inputs, max_new_tokens=args.max_new_tokens)
  first = time.time() - t1
  t1 = time.time()
  tokens = loaded.generate(**inputs, max_new_tokens=args.max_new_tokens)
  again = time.time() - t1
  answer = processor.decode(tokens)[0]
  print(f"[4/4] Q: {args.question}\n      A (random weights): {answer!r}")
  print(json.dumps({"video_tokens": int((inputs["input_ids"] == config.video_token_id).sum()),
                    "prompt_tokens": int(inputs["input_ids"].shape[1]),
                    "first_call_s": round(first, 2), "answer_latency_s": round(again, 3),
                    "total_s": round(time.time() - t0, 1)}))


if __name__ == "__main__":
  main()
