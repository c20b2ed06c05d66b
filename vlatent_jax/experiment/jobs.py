"""The experiment's heavy work, each run in a child process: stage-1 pretraining and one stage-2 run.

A job gets a plain dict (picklable across `spawn`) and returns a JSON-able dict; it pins itself to the
CPU cores it was given, so that runs side by side do not fight over them, and shares one persistent
compilation cache (runs that differ only in seed compile nothing twice).
"""

from __future__ import annotations

import copy
import json
import os
import time

import numpy as np


def start_child(cores: list[int] | None, cache_dir: str) -> None:
  """Pins this process to `cores` (before jax starts its thread pools) and enables the compile cache."""
  if cores:
    os.sched_setaffinity(0, cores)
  import jax
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)


def merge(base: dict, *overrides: dict) -> dict:
  """Nested dict update, returning a new dict."""
  out = copy.deepcopy(base)
  for o in overrides:
    for key, value in o.items():
      out[key] = merge(out.get(key) or {}, value) if isinstance(value, dict) and key != "tokens" else value
  return out


def build_config(path: str, *overrides: dict):
  from vlatent_jax.config import load_config_file, parse
  return parse(merge(load_config_file(path).to_dict(), *overrides))


def _data_paths(spec: dict):
  from vlatent_jax.train.loop import DataPaths
  return DataPaths(spec["train"], spec["val"], spec["tokenizer"])


# ------------------------------------------------------------------ stage 1


def pretrain_job(spec: dict) -> dict:
  """Builds the stage-1 corpus and held-out perception set, trains the tiny VLM on them (sft, vision
  trained), exports W/pretrained/model and scores perception. Returns the summary (also perception.json)."""
  start_child(spec.get("cores"), spec["cache_dir"])
  from vlatent_jax.data import pretrain_corpus, synthetic
  from vlatent_jax.eval import harness, readers
  from vlatent_jax.train.loop import train

  out = spec["out"]
  exclude = set(spec["exclude"])
  t0 = time.perf_counter()
  pretrain_corpus.build_perception_eval(os.path.join(out, "perception"), spec["tokenizer"],
                                        count=spec["perception_count"], seed=spec["seed"], exclude=exclude)
  corpus = pretrain_corpus.build_corpus(
      os.path.join(out, "corpus"), spec["tokenizer"], clips=spec["clips"], seed=spec["seed"],
      exclude=exclude | synthetic.read_digests(os.path.join(out, "perception")), workers=spec["workers"])
  data_seconds = time.perf_counter() - t0
  with open(os.path.join(out, "corpus", "spec.json")) as f:
    lengths = json.load(f)["max_lengths"]
  config = build_config(spec["config"], spec["overrides"], {
      "latent": {"mode": "sft"}, "optim": {"frozen": ()},
      "data": {"path": os.path.join(out, "corpus"), "val_path": "", "max_prompt_len": _round(lengths["prompt"]),
               "max_answer_len": lengths["answer"]},
      "train": {"eval_every_steps": 0, "seed": spec["seed"]},
      "checkpoint": {"every_steps": spec["overrides"]["train"]["steps"], "export_model": True}})
  t0 = time.perf_counter()
  train(config, out)
  train_seconds = time.perf_counter() - t0
  model, processor = harness.load(os.path.join(out, "model"))
  questions, errors = readers.read("embedded", os.path.join(out, "perception", "test.jsonl"))
  if errors:
    raise ValueError(f"{out}/perception/test.jsonl: {len(errors)} malformed rows, first {errors[0]}")
  scores = harness.evaluate(model, processor, questions, mode="sft", batch_size=spec["eval_batch"], progress=False)
  summary = {"accuracy": scores["accuracy"], "per_kind": {k: v["accuracy"] for k, v in scores["per_type"].items()},
             "n": scores["n"], "corpus": {k: corpus[k] for k in ("clips", "records", "seconds") if k in corpus},
             "data_seconds": data_seconds, "train_seconds": train_seconds, "steps": config.train.steps,
             "batch_size": config.train.batch_size, "learning_rate": config.optim.learning_rate}
  with open(os.path.join(out, "perception.json"), "w") as f:
    json.dump(summary, f, indent=2)
  return summary


def _round(n: int, multiple: int = 16) -> int:
  """Prompt bucket: the longest prompt (+ <|latent_start|>) rounded up, so every batch has one shape."""
  return -(-(n + 1) // multiple) * multiple


def teacher_job(spec: dict) -> list[dict]:
  """LaViT rows: the stage-1 model's teacher targets beside the benchmark's train and val shards."""
  start_child(spec.get("cores"), spec["cache_dir"])
  from vlatent_jax.train.teacher import write_teacher_targets
  return [write_teacher_targets(spec["teacher"], data, spec["num_latents"], note=spec["note"]) for data in spec["data"]]


# ------------------------------------------------------------------ stage 2


def run_job(spec: dict) -> dict:
  """Trains one row and seed from the stage-1 model, exports its best-by-validation checkpoint to
  W/runs/<row>_seed<S>/model, evaluates it on `spec["split"]` and writes result.json."""
  start_child(spec.get("cores"), spec["cache_dir"])
  from vlatent_jax.eval import harness, readers
  from vlatent_jax.plot import read_metrics
  from vlatent_jax.train import export
  from vlatent_jax.train.loop import export_model, train

  workdir = spec["workdir"]
  config = build_config(spec["config"], *spec["overrides"])
  t0 = time.perf_counter()
  train(config, workdir)
  train_seconds = time.perf_counter() - t0
  run_config, model_config, params, best_step = export.restore_params(workdir, best=True)
  model_dir = os.path.join(workdir, "model")
  export_model(model_dir, params, model_config, run_config, _data_paths(spec["data"]), best_step)
  model, processor = harness.load(model_dir)
  questions, errors = readers.read("embedded", spec["questions"])
  if errors:
    raise ValueError(f"{spec['questions']}: {len(errors)} malformed rows, first {errors[0]}")
  scores = harness.evaluate(model, processor, questions, batch_size=spec["eval_batch"], progress=False)
  metrics = read_metrics(os.path.join(workdir, "metrics.jsonl"))
  at_best = next((r for r in metrics if r["step"] == best_step and "val_loss" in r), {})
  result = {"row": spec["row"], "mode": spec["row"], "seed": spec["seed"], "split": spec["split"],
            "fingerprint": spec["fingerprint"], "steps": config.train.steps, "best_step": best_step,
            "learning_rate": config.optim.learning_rate, "train_seconds": train_seconds,
            "accuracy": scores["accuracy"], "per_type": {k: v["accuracy"] for k, v in scores["per_type"].items()},
            "n": scores["n"], "skipped": scores["skipped"], "seconds_per_answer": scores["seconds_per_answer"],
            "mean_latent_steps": scores.get("mean_latent_steps"),
            "mean_output_tokens": _mean_tokens(processor, scores["records"]),
            "best_val": {k: v for k, v in at_best.items() if k.startswith("val_")},
            "lim_gate": float(np.asarray(params["latent"]["gate"][...]).reshape(-1)[0]) if "latent" in params else None}
  if spec.get("k_sweep"):
    result["k_sweep"] = {str(k): _accuracy_with(model, processor, questions, k, spec["eval_batch"])
                         for k in spec["k_sweep"]}
  if spec.get("latent_examples"):
    result["latent_examples"] = latent_attention(model, processor, spec["latent_examples"], config.latent.steps)
  with open(os.path.join(workdir, "result.json"), "w") as f:
    json.dump(result, f, indent=2)
  return result


def _mean_tokens(processor, records: list[dict]) -> float:
  """Mean generated tokens per answer (the chain of thought's length shows here)."""
  counts = [len(processor.tokenizer(r["output"], add_special_tokens=False)["input_ids"]) + 1 for r in records]
  return float(np.mean(counts)) if counts else 0.0


def _accuracy_with(model, processor, questions, num_latents: int, batch_size: int) -> float:
  """Accuracy of a latent model answering after `num_latents` latent steps (0: straight after the prompt)."""
  from vlatent_jax.eval import harness
  mode = "sft" if num_latents == 0 else None
  return harness.evaluate(model, processor, questions, mode=mode, num_latents=num_latents or None,
                          batch_size=batch_size, progress=False)["accuracy"]


def latent_attention(model, processor, rows: list[dict], num_latents: int) -> list[dict]:
  """For each test row (with its "evidence" frame spans): the LIM attention of every latent step over
  the clip's temporal slices, [K][T], as `Model.generate(lim_attention=True)` returns it."""
  from vlatent_jax.data.prompts import chat_prompt
  from vlatent_jax.eval import harness
  out = []
  policy = harness.frame_policy(harness.resolve_settings(model)["frames"])
  for row in rows:
    frames, fps = harness.decode_task((row["video"], policy))
    inputs = processor([chat_prompt(processor.tokenizer, row["question"], row["question_type"], row.get("options"))],
                       videos=[frames], fps=[fps])
    tokens, info = model.generate(**inputs, mode="videolatent", num_latents=num_latents, max_new_tokens=8,
                                  return_info=True, lim_attention=True)
    out.append({"id": row["id"], "task": row["task"], "question": row["question"], "answer": row["answer"],
                "output": processor.decode(tokens)[0], "evidence": row.get("evidence") or [],
                "frames_per_slice": int(processor.video_config.temporal_patch_size),
                "attention": np.nan_to_num(info["lim_attention"][0]).round(4).tolist()})
  return out
