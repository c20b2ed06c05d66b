"""The Grain pipeline over ArrayRecord shards: static shapes, prompt buckets, seeding, per-process slices, resume,
workers; data/ alone (a plain batch function) and with the model's batches (`train.batch.make_dataset`)."""

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
from array_record.python.array_record_module import ArrayRecordWriter
from tiny_models import CONFIG, VIDEO

from vlatent_jax.data import pipeline, records
from vlatent_jax.data.collate import Example, stack
from vlatent_jax.data.pipeline import Decode, bucket_lengths, dataset_size, processor_config
from vlatent_jax.data.preprocess import VideoProcessorConfig, normalize_patches
from vlatent_jax.train.batch import collate, make_dataset

NUM, SHARDS, BATCH, K, MAX_ANSWER = 24, 2, 4, 3, 4
GRIDS = ([2, 4, 4], [1, 4, 6])
BUCKETS = (128, 256, 512)


def _record(i: int, rng: np.random.RandomState) -> dict:
  t, h, w = GRIDS[i % 2]
  n = rng.randint(120, 190) if i in (0, 7) else rng.randint(10, 100)  # two examples need the 256 bucket
  text = rng.randint(1, 57, size=n).tolist()
  prompt = [1 + i // 50, 1 + i % 50, 57] + [VIDEO] * (t * h * w // 4) + [58] + text  # first 2 tokens = id
  return {"patches": rng.randint(0, 256, size=(t * h * w, 1176)).astype(np.uint8),
          "video_grid_thw": [[t, h, w]], "second_per_grid_ts": [1.0], "prompt_ids": prompt,
          "answer_ids": rng.randint(1, 57, size=rng.randint(1, MAX_ANSWER + 1)),
          "meta": {"id": f"ex-{i}", "question": "q", "answer": "a"}}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
  root = tmp_path_factory.mktemp("shards")
  rng = np.random.RandomState(0)
  recs = [_record(i, rng) for i in range(NUM)]
  per = NUM // SHARDS
  for s in range(SHARDS):
    writer = ArrayRecordWriter(str(root / f"shard-{s:05d}-of-{SHARDS:05d}.array_record"), "group_size:1")
    for r in recs[s * per:(s + 1) * per]:
      writer.write(records.encode(r))
    writer.close()
  (root / "spec.json").write_text(json.dumps({"processor": {"patch_size": 14, "merge_size": 2}, "shards": []}))
  return str(root), recs


def _ds(path, **kw):
  args = dict(model_config=CONFIG, num_latents=K, batch_size=BATCH, max_answer_len=MAX_ANSWER, seed=0,
              prompt_buckets=BUCKETS, process_index=0, process_count=1)
  return make_dataset(path, **{**args, **kw})


def _take(it, n):
  return [next(it) for _ in range(n)]


def _ids(batch):
  """Example index per row, read from the first two valid prompt tokens (rows are left-padded)."""
  first = np.argmax(batch["attention_mask"], axis=1)
  rows = np.arange(len(first))
  return [int((batch["input_ids"][rows, first][r] - 1) * 50 + batch["input_ids"][rows, first + 1][r] - 1)
          for r in rows]


def _concat(lists):
  return [x for part in lists for x in part]


def _flat(batch):
  out = {k: v for k, v in batch.items() if k != "vision"}
  out.update({f"vision.{k}": v for k, v in batch["vision"]._asdict().items() if v is not None})
  return out


def _assert_same(a, b):
  fa, fb = _flat(a), _flat(b)
  assert fa.keys() == fb.keys()
  for k in fa:
    np.testing.assert_array_equal(fa[k], fb[k], err_msg=k)


def test_size_and_processor_from_spec(data):
  path, _ = data
  assert dataset_size(path) == NUM
  assert processor_config(path) == VideoProcessorConfig()


def test_batches_are_collate_output_with_static_shapes(data):
  path, recs = data
  batches = list(_ds(path, num_epochs=1))
  assert len(batches) == NUM // BATCH
  signatures = {tuple((k, v.shape, v.dtype.str) for k, v in _flat(b).items()) for b in batches}
  seqs = {b["input_ids"].shape[1] for b in batches}
  assert seqs <= set(BUCKETS) and len(seqs) == 2, seqs  # the data straddles two buckets
  # Slice counts in [4, 8] -> buckets 4 or 8; one slice-length bucket: at most 2 prompt x 2 vision programs.
  assert len(signatures) <= len(seqs) * 2
  for b in batches:
    assert b["vision"].patches.shape[0] == BATCH and b["vision"].merged_index is None  # per-example layout
    # Exactly what collate returns for these examples at the bucketed length.
    ex = [Example(list(recs[i]["prompt_ids"]), list(recs[i]["answer_ids"]),
                  normalize_patches(recs[i]["patches"]), np.asarray(recs[i]["video_grid_thw"]),
                  np.asarray(recs[i]["second_per_grid_ts"], np.float32)) for i in _ids(b)]
    need = max(len(e.prompt_ids) for e in ex) + 1  # + <|latent_start|>
    assert b["input_ids"].shape[1] == min(x for x in BUCKETS if x >= need)  # the smallest bucket that fits
    want = collate(ex, CONFIG, num_latents=K, max_answer_len=MAX_ANSWER, prompt_len=b["input_ids"].shape[1])
    _assert_same(b, want)


def test_decoded_pixels_are_normalized_stored_patches(data):
  path, recs = data
  blob = records.encode(recs[1])
  decoded = Decode(VideoProcessorConfig())(0, blob)
  assert decoded.id == "ex-1"
  np.testing.assert_array_equal(decoded.example.pixel_values_videos, recs[1]["patches"])  # uint8 until batched
  # (Worker processes normalise after the process boundary; test_worker_processes_... checks they match.)
  batch = next(iter(_ds(path, shuffle=False, batch_size=1)))
  t, h, w = GRIDS[0]
  patches = batch["vision"].patches[0]
  assert patches.dtype == np.float32
  np.testing.assert_array_equal(patches[:t, :h * w].reshape(-1, 1176), normalize_patches(recs[0]["patches"]))
  assert not patches[:t, h * w:].any() and not patches[t:].any()  # padding stays 0, as in collate


def test_seeded_shuffle_is_deterministic_and_reshuffles_each_epoch(data):
  path, _ = data
  a = [_ids(b) for b in _ds(path, num_epochs=2)]
  b = [_ids(b) for b in _ds(path, num_epochs=2)]
  c = [_ids(b) for b in _ds(path, num_epochs=2, seed=1)]
  assert a == b and a != c
  per_epoch = NUM // BATCH
  first, second = _concat(a[:per_epoch]), _concat(a[per_epoch:])
  assert sorted(first) == sorted(second) == list(range(NUM)) and first != second


def test_processes_read_disjoint_slices_covering_the_epoch(data):
  path, _ = data
  seen = [_concat(_ids(b) for b in _ds(path, num_epochs=1, process_index=p, process_count=2, batch_size=2))
          for p in range(2)]
  assert len(seen[0]) == len(seen[1]) == NUM // 2
  assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(NUM))


def test_iterator_state_restores_exactly(data):
  path, _ = data
  it = iter(_ds(path))
  _take(it, 3)
  state = it.get_state()
  expected = _take(it, 2)
  fresh = iter(_ds(path))
  fresh.set_state(state)
  for got, want in zip(_take(fresh, 2), expected):
    _assert_same(got, want)


def test_default_buckets_are_powers_of_two_up_to_max_prompt_len():
  assert bucket_lengths(2048) == (64, 128, 256, 512, 1024, 2048)
  assert bucket_lengths(300) == (64, 128, 256, 300)
  assert bucket_lengths(64) == (64,) and bucket_lengths(40) == (40,)
  with pytest.raises(ValueError, match="max_prompt_len"):
    bucket_lengths(0)


def test_short_prompts_get_the_small_bucket_and_long_ones_the_large(data):
  path, recs = data
  batches = list(_ds(path, prompt_buckets=None, max_prompt_len=256, shuffle=False, num_epochs=1))
  seqs = [b["input_ids"].shape[1] for b in batches]
  # Unshuffled, batch i holds records 4i..4i+3; records 0 and 7 (batches 0 and 1) are the long ones.
  needs = [max(len(recs[i]["prompt_ids"]) for i in range(j * BATCH, (j + 1) * BATCH)) + 1 for j in range(len(seqs))]
  assert needs[0] > 128 and needs[1] > 128 and max(needs[2:]) <= 128, needs  # the premise
  assert seqs[:2] == [256, 256]
  assert seqs[2:] == [min(x for x in (64, 128, 256) if x >= n) for n in needs[2:]]
  assert set(seqs[2:]) <= {64, 128}
  with pytest.raises(ValueError, match="at most one of prompt_buckets and max_prompt_len"):
    _ds(path, max_prompt_len=256)


def _stacked(examples, **options):
  """A plain batch function of data/ alone: the stacked examples as a dict (no model layout)."""
  return dataclasses.asdict(stack(examples, latent_start_id=61, latent_end_id=62, **options))


def test_data_pipeline_takes_a_plain_batch_function(data):
  path, recs = data
  ds = pipeline.make_dataset(path, batch_fn=_stacked, num_latents=K, batch_size=BATCH, max_answer_len=MAX_ANSWER,
                             seed=0, shuffle=False, num_epochs=1, prompt_buckets=BUCKETS, process_index=0,
                             process_count=1)
  batch = next(iter(ds))
  first = recs[:BATCH]
  assert batch["prompt_ids"].shape == (BATCH, max(len(r["prompt_ids"]) for r in first) + 1)  # + <|latent_start|>
  assert batch["pixel_values_videos"].dtype == np.uint8  # no normalize_fn: patches as stored
  np.testing.assert_array_equal(batch["pixel_values_videos"], np.concatenate([r["patches"] for r in first]))
  np.testing.assert_array_equal(batch["targets"][:, 0], 62)


def test_prompt_longer_than_every_bucket_names_the_example(data):
  path, _ = data
  with pytest.raises(ValueError, match=r"example 'ex-\d+'.*largest prompt bucket 64"):
    _take(iter(_ds(path, prompt_buckets=(32, 64))), NUM // BATCH)


def test_worker_processes_give_the_same_batches(data):
  path, _ = data
  want = _take(iter(_ds(path)), 4)
  it = iter(_ds(path, num_workers=2))
  try:
    got = _take(it, 3)
    state = it.get_state()
    got.append(next(it))
  finally:
    it.close()
  for g, w in zip(got, want):
    _assert_same(g, w)
  # The state taken through the workers resumes a fresh worker iterator (same num_workers) exactly.
  fresh = iter(_ds(path, num_workers=2))
  try:
    fresh.set_state(state)
    _assert_same(next(fresh), want[3])
  finally:
    fresh.close()


def test_orbax_checkpoint_stores_iterator_state(data, tmp_path):
  ocp = pytest.importorskip("orbax.checkpoint")
  import grain

  path, _ = data
  it = iter(_ds(path))
  _take(it, 2)
  with ocp.CheckpointManager(str(tmp_path / "ckpt")) as manager:
    manager.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
    manager.wait_until_finished()
    want = next(it)
    fresh = iter(_ds(path))
    manager.restore(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
  _assert_same(next(fresh), want)


def test_pipeline_does_not_import_torch():
  code = "import sys, vlatent_jax.data.pipeline; sys.exit('torch' in sys.modules)"
  assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
