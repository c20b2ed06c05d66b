"""Text + video -> model inputs, as Hugging Face's Qwen2_5_VLProcessor returns them, without torch.

The tokenizer comes from the model directory (`AutoTokenizer`, no torch), the
video side from `preprocess.py`; each `<|video_pad|>` placeholder expands to the
video's number of merged tokens, as HF's processor does.
"""

from __future__ import annotations

import os

import numpy as np

from vlatent_jax.data import preprocess

VIDEO_TOKEN = "<|video_pad|>"


class VideoTextProcessor:

  def __init__(self, tokenizer, video_config: preprocess.VideoProcessorConfig):
    self.tokenizer = tokenizer
    self.video_config = video_config

  @classmethod
  def from_dir(cls, path: str, video_config: preprocess.VideoProcessorConfig | None = None):
    from transformers import AutoTokenizer

    if not os.path.isfile(os.path.join(path, "tokenizer_config.json")):
      raise FileNotFoundError(f"no tokenizer_config.json in {path}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if video_config is None:
      try:
        video_config = preprocess.VideoProcessorConfig.from_pretrained_dir(path)
      except FileNotFoundError:
        video_config = preprocess.VideoProcessorConfig()
    return cls(tokenizer, video_config)

  def chat_prompt(self, question: str, with_video: bool = True) -> str:
    content = ([{"type": "video"}] if with_video else []) + [{"type": "text", "text": question}]
    return self.tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                              add_generation_prompt=True)

  def __call__(self, texts: list[str], videos: list[np.ndarray] | None = None,
               fps: list[float] | None = None) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if videos:
      out = preprocess.process_videos(videos, fps=fps, config=self.video_config)
      counts = iter((np.prod(out["video_grid_thw"], axis=1) // self.video_config.merge_size ** 2).tolist())
      expanded = []
      for text in texts:
        pieces = text.split(VIDEO_TOKEN)
        expanded.append(pieces[0] + "".join(VIDEO_TOKEN * next(counts) + p for p in pieces[1:]))
      texts = expanded
    enc = self.tokenizer(texts, padding=True, return_tensors="np")
    out["input_ids"] = enc["input_ids"].astype(np.int64)
    out["attention_mask"] = enc["attention_mask"].astype(np.int64)
    return out

  def decode(self, token_ids) -> list[str]:
    return self.tokenizer.batch_decode(np.asarray(token_ids), skip_special_tokens=True)
