"""LaViT teacher targets: a teacher model's outputs per example, computed once and written beside the shards.

    python -m vlatent_jax.train.teacher --teacher CKPT --data DIR --num-latents K [--batch-size 8]

The teacher (a vlatent_jax checkpoint or an HF Qwen2.5-VL directory: a larger model, or the embedded
experiment's stage-1 model) reads each prepared example in a teacher-forced plain pass (prompt + answer, no
latents). From its last decoder layer it gives the answer tokens' attention over the video tokens (`targets.answer_pass`, the pass the
attention_pool target uses); cut into the K temporal segments of `targets.segment_weights`, this is

  teacher_trajectory [K, M]  step k: the attention restricted to segment k's video tokens, renormalised
  teacher_targets    [K, D]  step k: the teacher's final hidden states over those tokens, pooled along it

written as one record per example into DIR/teacher/ (the data's shard names and order, `records.encode_teacher`)
with a spec.json; the folder appears under its name only once complete. Training reads them with
`latent.align_target = teacher` (L_align against teacher_targets; D must be the student's width) and
`latent.trajectory_weight` (KL against teacher_trajectory), paired with the examples by `data.pipeline`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from vlatent_jax import targets
from vlatent_jax.data import pipeline, records
from vlatent_jax.data.prepare import file_sha256
from vlatent_jax.train.batch import collate, normalize_vision, segment_pooling

ANSWER_BUCKET = 16  # answers padded to a multiple of this: few compiled shapes


def teacher_outputs(module, batch: dict, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(teacher_targets [B,K,D], trajectory [B,K,P]) of a plain `collate` batch (K = 0) and its segment
  weights [B,K,P]. A segment the answer does not attend to at all keeps its plain mean-pooling weights."""
  embeds = module.embed_inputs(batch["input_ids"], batch.get("vision"), batch.get("feature_index"))
  relevance, hidden = targets.answer_pass(module, batch, embeds)
  trajectory = targets.attention_weighted(weights, relevance)
  return jnp.einsum("bkp,bpd->bkd", trajectory, hidden.astype(jnp.float32)), trajectory


def write_teacher_targets(teacher: str, data_dir: str, num_latents: int, batch_size: int = 8,
                          note: dict | None = None) -> dict:
  """Writes DIR/teacher/ (see the module docstring) and returns its spec (with `note`, e.g. what made the
  teacher, for a caller that decides when to write them again)."""
  from array_record.python.array_record_module import ArrayRecordWriter

  from vlatent_jax.inference import load

  if num_latents < 1 or batch_size < 1:
    raise ValueError(f"need num_latents >= 1 and batch_size >= 1, got {num_latents}, {batch_size}")
  start = time.time()
  model = load(teacher)
  processor = pipeline.processor_config(data_dir)
  if processor.patch_dim != model.config.vision.patch_dim:
    raise ValueError(f"{data_dir}: patches of {processor.patch_dim} values, but the teacher {teacher} expects "
                     f"{model.config.vision.patch_dim}")
  decode = pipeline.Decode(processor)
  run = jax.jit(lambda state, batch, weights: teacher_outputs(nnx.merge(model.graphdef, state), batch, weights))
  folder = os.path.join(data_dir, pipeline.TEACHER_DIR)
  partial = folder + ".partial"
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  shards, count = pipeline.shard_paths(data_dir), 0
  for shard in shards:
    source = grain.sources.ArrayRecordDataSource([shard])
    writer = ArrayRecordWriter(os.path.join(partial, os.path.basename(shard)), "group_size:1")
    for lo in range(0, len(source), batch_size):
      items = [decode(i, source[i]) for i in range(lo, min(lo + batch_size, len(source)))]
      examples = [it.example for it in items]
      ids = [it.id for it in items]
      seq = pipeline.prompt_bucket([len(e.prompt_ids) for e in examples], ids, pipeline.DEFAULT_PROMPT_BUCKETS)
      answer = -(-max(len(e.answer_ids) for e in examples) // ANSWER_BUCKET) * ANSWER_BUCKET
      batch = normalize_vision(collate(examples, model.config, num_latents=0, max_answer_len=answer, prompt_len=seq),
                               processor)
      feature_index = batch.get("feature_index")
      weights = segment_pooling(examples, feature_index, [num_latents] * len(examples), num_latents,
                                model.config.vision.merge_unit, seq)
      semantics, trajectory = jax.device_get(run(model.state, jax.tree.map(jnp.asarray, batch), jnp.asarray(weights)))
      for i, it in enumerate(items):
        video = np.zeros(seq, bool) if feature_index is None else feature_index[i] >= 0
        writer.write(records.encode_teacher(semantics[i], trajectory[i][:, video], it.id))
      count += len(items)
    writer.close()
  spec = {"teacher": os.path.abspath(teacher), "num_latents": num_latents, "hidden_size": model.config.llm.hidden_size,
          "records": count, "shards": [os.path.basename(s) for s in shards],
          "data_spec_sha256": file_sha256(os.path.join(data_dir, "spec.json")), "seconds": round(time.time() - start, 2),
          "note": note or {}}
  with open(os.path.join(partial, "spec.json"), "w") as f:
    json.dump(spec, f, indent=1)
  shutil.rmtree(folder, ignore_errors=True)
  os.replace(partial, folder)
  return spec


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--teacher", required=True, help="a vlatent_jax model checkpoint or an HF Qwen2.5-VL directory")
  p.add_argument("--data", required=True, help="prepared shards (prepare / pretrain_corpus output)")
  p.add_argument("--num-latents", type=int, required=True, help="K: the student's latent.num_latents")
  p.add_argument("--batch-size", type=int, default=8)
  a = p.parse_args(argv)
  spec = write_teacher_targets(a.teacher, a.data, a.num_latents, a.batch_size)
  print(json.dumps(spec))
  return spec


if __name__ == "__main__":
  main()
