"""Grain input pipeline: ArrayRecord shards -> shuffled, per-process, static-shape training batches.

Why: decoding videos while training starves the accelerator; `prepare` pre-decodes every example into
one ArrayRecord record (`records.py`: uint8 patches + token ids), and this module streams them back:

    ArrayRecordDataSource(shards)            random access, one record per example ("group_size:1")
      .seed(seed).shuffle()                  one global permutation, redrawn every epoch
      .repeat(num_epochs)                    None = endless stream (batches may straddle epochs)
      [process_index::process_count]         each JAX process reads a disjoint slice of that stream
      .map_with_index(decode)                record -> collate.Example holding the stored uint8 patches
      .batch(batch_size, batch_fn=Collate)   padded to the smallest prompt bucket that fits; the batch's
                                             position in the stream (= its training step) picks its latent
                                             steps and targets (`curriculum.TargetSchedule`), then the
                                             caller's `batch_fn` lays the examples out
      .to_iter_dataset(ReadOptions)          threaded, ordered prefetch
      .mp_prefetch(num_workers)              optional worker processes (same batches, same order)
      .map(normalize_fn)                     the caller's: uint8 patches -> float32
      ThreadPrefetchIterDataset               (with workers) normalise ahead on a thread, off the train loop

The batch layout the model needs is the caller's (`train.batch.make_dataset` passes `ModelBatch` and
`normalize_vision`): data/ knows examples and numbers (prompt buckets, patch size), not the model.
Patches stay uint8 until after batching, so the workers ship 4x fewer bytes through shared memory.
Measured on 2 CPUs with 56 px clips: 2 workers deliver ~3x more batches than with float32 patches
crossing the process boundary. With num_workers=0 the normalisation runs in the prefetch threads.

Every process shuffles with the same seed, so the slices of one permutation are disjoint and together
cover each epoch. `batch_size` is per process (the global batch is batch_size * process_count).

Static shapes: the prompt axis is one of `prompt_buckets` (default with `max_prompt_len`: powers of two
from 64 up to it, `bucket_lengths`), each batch padded to the smallest bucket holding its longest
prompt; `ModelBatch` lays videos out per example (`vision.per_example_layout`: [B, slices, patches, ...],
slices per example bucketed to a power of two, slice length to a power of two up to 64, then multiples
of 64), so jit compiles at most len(prompt_buckets) x (few vision buckets) programs and every array
splits along the batch over hosts and devices.

Checkpointing: `it = iter(ds)`; `it.get_state()` / `it.set_state(state)` save and resume the exact
position (also through `mp_prefetch`; the state's layout depends on num_workers, so resume with the same
num_workers and process_count); `grain.checkpoint.CheckpointSave(it)` /
`CheckpointRestore(it)` store the same state as one json per process inside an orbax checkpoint.
"""

from __future__ import annotations

import dataclasses
import functools
import glob
import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np

from vlatent_jax.data import records
from vlatent_jax.data.collate import Example
from vlatent_jax.data.curriculum import TargetSchedule
from vlatent_jax.data.preprocess import VideoProcessorConfig

SHARD_PATTERN = "shard-*-of-*.array_record"
DEFAULT_PROMPT_BUCKETS = (128, 256, 512, 1024)  # without max_prompt_len
SMALLEST_PROMPT_BUCKET = 64

# (examples, *, num_latents, max_answer_len, prompt_len, plans) -> batch dict, e.g. `train.batch.ModelBatch`;
# picklable (Grain workers call it)
BatchFn = Callable[..., dict[str, Any]]


def shard_paths(data_dir: str) -> list[str]:
  """The shard files of a prepared directory, sorted (so every process sees the same order)."""
  paths = sorted(glob.glob(os.path.join(os.fspath(data_dir), SHARD_PATTERN)))
  if not paths:
    raise FileNotFoundError(f"no shards matching {SHARD_PATTERN} in {data_dir}")
  return paths


def processor_config(data_dir: str) -> VideoProcessorConfig:
  """The VideoProcessorConfig the shards were written with: spec.json["processor"], else defaults."""
  spec_path = os.path.join(os.fspath(data_dir), "spec.json")
  if not os.path.isfile(spec_path):
    return VideoProcessorConfig()
  with open(spec_path) as f:
    spec = json.load(f)
  values = spec.get("processor") or {}
  known = {f.name for f in dataclasses.fields(VideoProcessorConfig)}
  kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in known}
  return VideoProcessorConfig(**kwargs)


def dataset_size(data_dir: str) -> int:
  """Number of examples (records) over all shards."""
  return len(grain.sources.ArrayRecordDataSource(shard_paths(data_dir)))


@dataclasses.dataclass(frozen=True)
class DecodedExample:
  """One decoded record: the collate input, its id (for error messages) and its position in the stream."""
  id: str
  example: Example
  position: int = 0


TEACHER_DIR = "teacher"  # <data>/teacher/: one teacher record per example, the data's shard names (train/teacher.py)


def teacher_shard_paths(data_dir: str) -> list[str]:
  """The teacher shards beside `data_dir`'s shards, checked to pair with them one to one."""
  folder = os.path.join(data_dir, TEACHER_DIR)
  spec = os.path.join(folder, "spec.json")
  if not os.path.isfile(spec):
    raise FileNotFoundError(f"{data_dir}: no teacher targets ({spec} is missing); write them with "
                            f"python -m vlatent_jax.train.teacher --teacher CKPT --data {data_dir} --num-latents K")
  shards = shard_paths(data_dir)
  paired = [os.path.join(folder, os.path.basename(p)) for p in shards]
  missing = [p for p in paired if not os.path.isfile(p)]
  if missing:
    raise FileNotFoundError(f"{folder}: teacher shard {missing[0]} is missing")
  if len(grain.sources.ArrayRecordDataSource(paired)) != len(grain.sources.ArrayRecordDataSource(shards)):
    raise ValueError(f"{folder}: the teacher shards hold another number of records than {data_dir}'s")
  return paired


class PairedSource:
  """Record i of the data shards with record i of their teacher shards (grain's random-access protocol)."""

  def __init__(self, data_dir: str):
    self.data = grain.sources.ArrayRecordDataSource(shard_paths(data_dir))
    self.teacher = grain.sources.ArrayRecordDataSource(teacher_shard_paths(data_dir))

  def __len__(self) -> int:
    return len(self.data)

  def __getitem__(self, index: int) -> tuple[bytes, bytes]:
    return self.data[index], self.teacher[index]


@dataclasses.dataclass(frozen=True)
class Decode:
  """Record bytes (or a (record, teacher record) pair) -> DecodedExample with the stored uint8 patches.
  Module-level: workers unpickle it."""
  processor: VideoProcessorConfig

  def __call__(self, position: int, blob) -> DecodedExample:
    blob, teacher = blob if isinstance(blob, tuple) else (blob, None)
    r = records.decode(blob)
    meta = r.get("meta") or {}
    patches = np.asarray(r["patches"], np.uint8)
    if patches.size and (patches.ndim != 2 or patches.shape[1] != self.processor.patch_dim):
      raise ValueError(f"example {meta.get('id')!r}: patches of shape {patches.shape}, expected "
                       f"[N, {self.processor.patch_dim}]")
    pixels = patches if patches.size else None  # uint8 until after batching (see Normalize)
    example = Example(
        prompt_ids=np.asarray(r["prompt_ids"]).tolist(), answer_ids=np.asarray(r["answer_ids"]).tolist(),
        pixel_values_videos=pixels,
        video_grid_thw=None if pixels is None else np.asarray(r["video_grid_thw"], np.int64).reshape(-1, 3),
        second_per_grid_ts=None if pixels is None else np.asarray(r["second_per_grid_ts"], np.float32).reshape(-1),
        reasoning_ids=[np.asarray(ids).tolist() for ids in r["reasoning_ids"]] if r.get("reasoning_ids") else None)
    example_id = str(meta.get("id", meta.get("line", "?")))
    if teacher is not None:
      t = records.decode(teacher)
      if t.get("id") != example_id:
        raise ValueError(f"teacher record {t.get('id')!r} is paired with example {example_id!r}: the teacher "
                         "targets were written for other data")
      example = dataclasses.replace(example, teacher_targets=np.asarray(t["teacher_targets"], np.float32),
                                    teacher_trajectory=np.asarray(t["teacher_trajectory"], np.float32))
    return DecodedExample(example_id, example, position)


def bucket_lengths(max_prompt_len: int, smallest: int = SMALLEST_PROMPT_BUCKET) -> tuple[int, ...]:
  """Prompt buckets up to `max_prompt_len`: powers of two from `smallest` below it, then it.

  Few shapes to compile (log2(max / smallest) + 1), and short prompts are not padded to the longest one.
  """
  if max_prompt_len <= 0:
    raise ValueError(f"max_prompt_len must be positive, got {max_prompt_len}")
  buckets, n = [], smallest
  while n < max_prompt_len:
    buckets.append(n)
    n *= 2
  return (*buckets, max_prompt_len)


def prompt_bucket(lengths: Sequence[int], ids: Sequence[str], buckets: Sequence[int]) -> int:
  """Smallest bucket holding the longest prompt; ValueError naming the example otherwise."""
  longest = int(np.argmax(lengths))
  for bucket in sorted(buckets):
    if bucket >= lengths[longest]:
      return bucket
  raise ValueError(f"example {ids[longest]!r}: prompt of {lengths[longest]} tokens (latent start included) "
                   f"exceeds the largest prompt bucket {max(buckets)}")


@dataclasses.dataclass(frozen=True)
class Collate:
  """Grain batch function: DecodedExamples -> `batch_fn`'s batch at a bucketed prompt length.

  The schedule's plan for the batch's training step (`batch_size` items per step; None = always the last
  curriculum stage, as validation wants) picks each example's latent steps and target.
  """
  batch_fn: BatchFn
  schedule: TargetSchedule
  max_answer_len: int
  prompt_buckets: tuple
  batch_size: int | None = None

  def __call__(self, items: Sequence[DecodedExample]) -> dict[str, Any]:
    ids = [it.id for it in items]
    step = None if self.batch_size is None else items[0].position // self.batch_size
    plans = []
    for it in items:
      plan = self.schedule.plan(step, it.example.rationale_steps)
      if plan.drop is not None and not it.example.reasoning_ids:
        raise ValueError(f"example {it.id!r} has no rationale: cot and latent.curriculum need manifests whose "
                         "rows carry 'rationale'")
      target = it.example.target_ids(plan.drop)
      if len(target) > self.max_answer_len:
        raise ValueError(f"example {it.id!r}: target of {len(target)} tokens exceeds "
                         f"max_answer_len={self.max_answer_len}")
      plans.append(plan)
    k = self.schedule.num_latents
    lengths = [len(it.example.prompt_ids) + (1 if k else 0) for it in items]
    seq = prompt_bucket(lengths, ids, self.prompt_buckets)
    return self.batch_fn([it.example for it in items], num_latents=k, max_answer_len=self.max_answer_len,
                         prompt_len=seq, plans=plans)


def _ensure_absl_flags_parsed() -> None:
  # Grain's worker processes read absl flags; outside absl.app they are unparsed and would raise.
  from absl import flags
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def make_dataset(data_dir: str, *, batch_fn: BatchFn,
                 normalize_fn: Callable[[dict[str, Any], VideoProcessorConfig], dict[str, Any]] | None = None,
                 patch_dim: int | None = None, num_latents: int | None = None, batch_size: int,
                 max_answer_len: int, seed: int, schedule: TargetSchedule | None = None, final_stage: bool = False,
                 shuffle: bool = True, num_epochs: int | None = None,
                 process_index: int | None = None, process_count: int | None = None, num_workers: int = 0,
                 prompt_buckets: Sequence[int] | None = None, max_prompt_len: int | None = None,
                 drop_remainder: bool = True, read_options: grain.ReadOptions | None = None,
                 teacher: bool = False) -> grain.IterDataset:
  """The training stream of `data_dir` (see the module docstring); iterate it for numpy batch dicts.

  `batch_fn` lays each batch of examples out (`train.batch.make_dataset` binds the model's);
  `normalize_fn(batch, processor)` turns its uint8 patches to float after the worker boundary (None:
  batches as `batch_fn` returns them); `patch_dim`, when given, must match the shards' patches.
  batch_size is per process. num_epochs=None repeats forever. process_index/count default to
  jax.process_index()/process_count(). read_options default to 2 threads and 4 prefetched batches
  (a batch of real videos is large: keep the buffer small). `schedule` picks latent steps and targets
  per training step (default: `num_latents` slots and the plain answer); `final_stage` holds it at its
  last stage (validation). Prompt buckets: `prompt_buckets`, else `bucket_lengths(max_prompt_len)`,
  else DEFAULT_PROMPT_BUCKETS. `teacher` pairs every example with its teacher record (`TEACHER_DIR`).
  """
  if (schedule is None) == (num_latents is None):
    raise ValueError("pass exactly one of num_latents and schedule")
  schedule = schedule or TargetSchedule(num_latents=num_latents)
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}")
  if prompt_buckets is not None and max_prompt_len is not None:
    raise ValueError("pass at most one of prompt_buckets and max_prompt_len")
  if prompt_buckets is None:
    prompt_buckets = DEFAULT_PROMPT_BUCKETS if max_prompt_len is None else bucket_lengths(max_prompt_len)
  if not prompt_buckets or min(prompt_buckets) <= 0:
    raise ValueError(f"prompt_buckets must be non-empty and positive, got {prompt_buckets}")
  if process_index is None or process_count is None:
    import jax
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index {process_index} not in [0, {process_count})")
  processor = processor_config(data_dir)
  if patch_dim is not None and processor.patch_dim != patch_dim:
    raise ValueError(f"{data_dir}: shards hold patches of {processor.patch_dim} values but the model "
                     f"expects {patch_dim}")

  source = PairedSource(data_dir) if teacher else grain.sources.ArrayRecordDataSource(shard_paths(data_dir))
  ds = grain.MapDataset.source(source)
  if shuffle:
    ds = ds.seed(seed).shuffle()
  ds = ds.repeat(num_epochs)
  ds = ds[process_index::process_count]
  ds = ds.map_with_index(Decode(processor))
  ds = ds.batch(batch_size, drop_remainder=drop_remainder,
                batch_fn=Collate(batch_fn, schedule, max_answer_len, tuple(sorted(prompt_buckets)),
                                 None if final_stage else batch_size))
  normalize = None if normalize_fn is None else functools.partial(normalize_fn, processor=processor)
  if num_workers == 0 and normalize is not None:
    ds = ds.map(normalize)  # in the prefetch threads
  ds = ds.to_iter_dataset(read_options or grain.ReadOptions(num_threads=2, prefetch_buffer_size=4))
  if num_workers > 0:
    _ensure_absl_flags_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=num_workers))
    if normalize is not None:
      ds = ds.map(normalize)  # in this process: uint8 crosses the process boundary ...
    ds = grain.experimental.ThreadPrefetchIterDataset(ds, prefetch_buffer_size=2)  # ... on a background thread
  return ds
