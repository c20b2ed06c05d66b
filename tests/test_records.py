"""data/records.py's msgpack codec is flax.serialization's wire format byte for byte, both directions, so shards
written with flax read with the new codec (and the other way round). Tests may import flax; records.py may not."""

import ml_dtypes
import numpy as np
import pytest
from flax import serialization

from vlatent_jax.data import records


def _tree():
  """Arrays of several dtypes and ranks, numpy and Python scalars, nested dicts with unsorted keys, lists."""
  rng = np.random.default_rng(0)
  return {
      "zeta": rng.integers(0, 255, (3, 8), dtype=np.uint8),
      "alpha": {"b": np.arange(6, dtype=np.int64).reshape(2, 3), "a": rng.standard_normal(4).astype(np.float32),
                "c": {"half": np.ones((2, 2), np.float16), "mask": np.array([True, False]),
                      "bf16": np.arange(3, dtype=ml_dtypes.bfloat16), "cplx": np.array([1 + 2j], np.complex64)}},
      "lists": [np.array([1, 2, 3], np.int32), np.zeros((0, 3), np.float64), [1, "two", None], {"y": 1, "x": 2}],
      "scalars": {"i": 7, "big": 2**40, "neg": -3, "f": 0.25, "t": True, "none": None, "s": "naïve",
                  "np_f32": np.float32(1.5), "np_i64": np.int64(-2), "zero_d": np.array(3.0), "c": 1 - 0.5j,
                  "bytes": b"\x00\x01"},
  }


def _record():
  rng = np.random.default_rng(1)
  return {"patches": rng.integers(0, 255, (16, 1176), dtype=np.uint8), "video_grid_thw": [[2, 4, 4], [1, 2, 4]],
          "second_per_grid_ts": [1.0, 0.5], "prompt_ids": [1, 2, 3], "answer_ids": np.array([4, 5]),
          "meta": {"id": "q1", "line": 3, "video": "videos/a.mp4", "question": "Which?", "answer": "B",
                   "options": ["red", "blue"], "question_type": "multiple choice"},
          "reasoning_ids": [[7, 8, 9], [9]]}


def _same(a, b, where="root"):
  """Equal trees: the same containers, dict key order, leaf types, array dtypes, shapes and values."""
  assert type(a) is type(b), (where, type(a), type(b))
  if isinstance(a, dict):
    assert list(a) == list(b), where
    for k in a:
      _same(a[k], b[k], f"{where}/{k}")
  elif isinstance(a, list):
    assert len(a) == len(b), where
    for i, (x, y) in enumerate(zip(a, b)):
      _same(x, y, f"{where}/{i}")
  elif isinstance(a, np.ndarray):
    assert (a.dtype, a.shape) == (b.dtype, b.shape), where
    assert a.tobytes() == b.tobytes(), where
  else:
    assert a == b, where


def test_encoder_writes_flax_bytes():
  tree = _tree()
  assert records.pack(tree) == serialization.msgpack_serialize(tree)
  assert records.pack(tree["lists"][0]) == serialization.msgpack_serialize(tree["lists"][0])  # a bare array


def test_decoder_reads_flax_bytes_and_round_trips():
  blob = serialization.msgpack_serialize(_tree())
  _same(records.unpack(blob), serialization.msgpack_restore(blob))
  _same(serialization.msgpack_restore(records.pack(_tree())), records.unpack(records.pack(_tree())))
  restored = records.unpack(blob)
  assert restored["alpha"]["c"]["bf16"].dtype == np.dtype(ml_dtypes.bfloat16)
  assert list(restored) == ["alpha", "lists", "scalars", "zeta"]  # flax's key order: sorted


def test_a_record_is_what_flax_wrote():
  record = _record()
  blob = records.encode(record)
  flax_blob = serialization.msgpack_serialize(serialization.msgpack_restore(blob))  # flax re-encoding our record
  assert blob == flax_blob
  decoded = records.decode(flax_blob)
  assert decoded["version"] == records.VERSION and decoded["meta"] == record["meta"]
  assert decoded["video_grid_thw"].dtype == np.int64 and decoded["video_grid_thw"].shape == (2, 3)
  assert [r.tolist() for r in decoded["reasoning_ids"]] == record["reasoning_ids"]
  np.testing.assert_array_equal(decoded["patches"], record["patches"])


def test_oversized_arrays_are_chunked_as_flax_chunks_them(monkeypatch):
  monkeypatch.setattr(serialization, "MAX_CHUNK_SIZE", 16)
  monkeypatch.setattr(records, "MAX_CHUNK_SIZE", 16)
  tree = {"big": np.arange(10, dtype=np.int32).reshape(2, 5),  # keys in sorted order, as they come back
          "in_list": [np.arange(9, dtype=np.int64), {"big": np.arange(5, dtype=np.int64)}],
          "nested": {"big": np.arange(7, dtype=np.float32)}, "small": np.arange(2)}
  blob = records.pack(tree)
  assert blob == serialization.msgpack_serialize(tree)
  _same(records.unpack(blob), serialization.msgpack_restore(blob))
  _same(records.unpack(blob), tree)
  assert records.pack(tree["big"]) == serialization.msgpack_serialize(tree["big"])


def test_bad_inputs_fail():
  with pytest.raises(ValueError, match="object"):
    records.pack({"x": np.array([object()])})
  with pytest.raises(TypeError):
    records.pack({"x": (1, 2)})  # flax refuses tuples too (strict types)
  with pytest.raises(ValueError, match="missing fields"):
    records.encode({"patches": np.zeros((1, 1), np.uint8)})
  with pytest.raises(ValueError, match="version"):
    records.decode(records.pack({"version": 99}))
