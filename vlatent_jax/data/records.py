"""The pre-decoded example record stored in ArrayRecord shards (one msgpack blob per example).

msgpack, byte for byte as flax.serialization's msgpack_serialize / msgpack_restore write and read it (the
shards written before this codec moved here still read; data/ imports no flax): numpy arrays round-trip
with dtype and shape, and nothing is ever unpickled. Fields:

    patches           uint8 [N, 3*T*P*P]  resized, un-normalised patches (preprocess.patchify_uint8)
    video_grid_thw    int64 [V, 3]
    second_per_grid_ts float32 [V]
    prompt_ids        int32 [L]           chat prompt, video placeholders expanded, ends with the assistant header
    answer_ids        int32 [A]           answer tokens, ends with the end-of-turn token
    meta              dict                id, line, video, question, answer, options, question_type (JSON types)
    reasoning_ids     [int32 [R_s]]       optional: the target after s rationale steps are dropped, s = 0..n
                                          (`prompts.reasoning_texts` + end-of-turn), for cot / curriculum training

A teacher record (LaViT; `train/teacher.py` writes one per example into `<data>/teacher/`, same shard names and
order) holds:

    teacher_targets    float32 [K, D]     the teacher's visual semantics per latent step
    teacher_trajectory float32 [K, M]     per latent step, a distribution over the example's M video tokens
    id                 str                the example's meta id (checked when the two are read together)
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

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
  return pack(body)


def encode_teacher(targets: np.ndarray, trajectory: np.ndarray, example_id: str) -> bytes:
  targets, trajectory = np.asarray(targets, np.float32), np.asarray(trajectory, np.float32)
  if targets.ndim != 2 or trajectory.ndim != 2 or targets.shape[0] != trajectory.shape[0]:
    raise ValueError(f"example {example_id!r}: teacher targets {targets.shape} and trajectory {trajectory.shape} "
                     "must be [K, D] and [K, M]")
  return pack({"version": VERSION, "teacher_targets": targets, "teacher_trajectory": trajectory, "id": example_id})


def decode(blob: bytes) -> dict[str, Any]:
  record = unpack(blob)
  if record.get("version") != VERSION:
    raise ValueError(f"unsupported record version {record.get('version')!r} (expected {VERSION})")
  return record


# flax.serialization's wire format: an array is msgpack ExtType(code, packb((shape, dtype name, C-order bytes)));
# a numpy scalar is the same payload of a 0-d array under its own code; a Python complex is packb((real, imag)).
# Arrays over MAX_CHUNK_SIZE bytes (msgpack's 2 GiB object limit) are written as dicts of flat chunks.
EXT_NDARRAY, EXT_COMPLEX, EXT_NPSCALAR = 1, 2, 3
MAX_CHUNK_SIZE = 2**30
CHUNKED = "__msgpack_chunked_array__"


def _array_bytes(x: np.ndarray) -> bytes:
  if x.dtype.hasobject or x.dtype.isalignedstruct:
    raise ValueError(f"cannot serialise an array of dtype {x.dtype} (object and structured dtypes)")
  return msgpack.packb((x.shape, x.dtype.name, x.tobytes("C")), use_bin_type=True)


def _array_from_bytes(data: bytes) -> np.ndarray:
  shape, name, buffer = msgpack.unpackb(data, raw=True)
  if name == b"bfloat16":  # not a numpy dtype name; flax reads it as jax's (= ml_dtypes') bfloat16
    import ml_dtypes
    dtype = np.dtype(ml_dtypes.bfloat16)
  else:
    dtype = np.dtype(name)
  return np.frombuffer(buffer, dtype=dtype).reshape(shape, order="C")


def _ext_pack(x):
  if isinstance(x, np.ndarray):
    return msgpack.ExtType(EXT_NDARRAY, _array_bytes(x))
  if isinstance(x, np.generic):
    return msgpack.ExtType(EXT_NPSCALAR, _array_bytes(np.asarray(x)))
  if isinstance(x, complex):
    return msgpack.ExtType(EXT_COMPLEX, msgpack.packb((x.real, x.imag)))
  return x  # msgpack then raises TypeError naming the type


def _ext_unpack(code: int, data: bytes):
  if code == EXT_NDARRAY:
    return _array_from_bytes(data)
  if code == EXT_NPSCALAR:
    return _array_from_bytes(data)[()]
  if code == EXT_COMPLEX:
    real, imag = msgpack.unpackb(data)
    return complex(real, imag)
  return msgpack.ExtType(code, data)


def _chunk(x: np.ndarray) -> dict:
  size = max(1, MAX_CHUNK_SIZE // x.dtype.itemsize)
  flat = x.reshape(-1)
  return {CHUNKED: True, "shape": {str(i): n for i, n in enumerate(x.shape)},
          "chunks": {str(i): flat[start:start + size] for i, start in enumerate(range(0, flat.size, size))}}


def _copy(tree, chunk: bool = True):
  """What flax does to a tree before packing: a copy with dict keys sorted (jax.tree_util's order; tuples,
  lists and None kept), then arrays over MAX_CHUNK_SIZE chunked: at the top and in dicts, not below a list."""
  if chunk and isinstance(tree, np.ndarray) and tree.nbytes > MAX_CHUNK_SIZE:
    return _chunk(tree)
  if isinstance(tree, dict):
    return {k: _copy(v, chunk) for k, v in sorted(tree.items())}
  if isinstance(tree, (list, tuple)):
    return type(tree)(_copy(v, False) for v in tree)
  return tree


def _unchunk(tree):
  if isinstance(tree, dict):
    if CHUNKED in tree:
      shape = tuple(tree["shape"][str(i)] for i in range(len(tree["shape"])))
      return np.concatenate([tree["chunks"][str(i)] for i in range(len(tree["chunks"]))]).reshape(shape)
    return {k: _unchunk(v) if isinstance(v, dict) else v for k, v in tree.items()}
  return tree


def pack(tree) -> bytes:
  """Nested dicts / lists of numpy arrays and msgpack types -> bytes (= flax.serialization.msgpack_serialize)."""
  return msgpack.packb(_copy(tree), default=_ext_pack, strict_types=True)


def unpack(blob: bytes):
  """pack's (or flax.serialization.msgpack_serialize's) bytes -> the tree (= flax.serialization.msgpack_restore);
  arrays are read-only views of `blob`."""
  return _unchunk(msgpack.unpackb(blob, ext_hook=_ext_unpack, raw=False, strict_map_key=False))
