"""The pre-decoded example record stored in ArrayRecord shards (one msgpack blob per example).

msgpack via flax.serialization: numpy arrays round-trip with dtype and shape,
and nothing is ever unpickled. Fields:

    patches           uint8 [N, 3*T*P*P]  resized, un-normalised patches (preprocess.patchify_uint8)
    video_grid_thw    int64 [V, 3]
    second_per_grid_ts float32 [V]
    prompt_ids        int32 [L]           chat prompt, video placeholders expanded, ends with the assistant header
    answer_ids        int32 [A]           answer tokens, ends with the end-of-turn token
    meta              dict                id, line, video, question, answer, options, question_type (JSON types)
    reasoning_ids     [int32 [R_s]]       optional: the target after s rationale steps are dropped, s = 0..n
                                          (`prompts.reasoning_texts` + end-of-turn), for cot / curriculum training
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flax import serialization

FIELDS = ("patches", "video_grid_thw", "second_per_grid_ts", "prompt_ids", "answer_ids", "meta")
VERSION = 1


def encode(record: dict[str, Any]) -> bytes:
  missing = [f for f in FIELDS if f not in record]
  if missing:
    raise ValueError(f"record is missing fields {missing}")
  body = {
      "version": VERSION,
      "patches": np.ascontiguousarray(record["patches"], np.uint8),
      "video_grid_thw": np.asarray(record["video_grid_thw"], np.int64).reshape(-1, 3),
      "second_per_grid_ts": np.asarray(record["second_per_grid_ts"], np.float32).reshape(-1),
      "prompt_ids": np.asarray(record["prompt_ids"], np.int32),
      "answer_ids": np.asarray(record["answer_ids"], np.int32),
      "meta": dict(record["meta"]),
  }
  if record.get("reasoning_ids") is not None:
    body["reasoning_ids"] = [np.asarray(ids, np.int32) for ids in record["reasoning_ids"]]
  return serialization.msgpack_serialize(body)


def decode(blob: bytes) -> dict[str, Any]:
  record = serialization.msgpack_restore(blob)
  if record.get("version") != VERSION:
    raise ValueError(f"unsupported record version {record.get('version')!r} (expected {VERSION})")
  return record
