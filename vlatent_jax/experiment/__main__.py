"""The headline experiment, end to end: python -m vlatent_jax.experiment --workdir W [--preset cpu|gpu]

1. generates the embedded benchmark (train / val / test, with rationales) and prepares train and val shards;
2. stage 1, once per workdir (W/pretrained/model, reused by every row and seed): a procedurally generated
   corpus from the same renderer, disjoint from the QA clips (dense temporal descriptions and single-fact
   perception questions), trains the tiny VLM from scratch; its held-out perception accuracy is reported;
3. stage 2: every row (`--modes`: sft, cot, continuous_thought, videolatent, videolatent_curriculum, ...)
   fine-tunes the stage-1 model with the same budget for each seed, side by side on the CPU cores; each
   run's checkpoint is chosen by validation loss and evaluated on the test split;
4. writes W/results.md, results.json, accuracy.png, curves.png and latents.png.

A run (or stage 1) is reused only when everything that defines it is identical (its resolved config, the
data, the stage-1 model, the evaluation); anything else is retrained. Nothing is tuned on test.
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import shutil
import threading
import time

from vlatent_jax.data import pipeline
from vlatent_jax.experiment import jobs, report
from vlatent_jax.experiment.presets import PRESETS
from vlatent_jax.experiment.rows import DEFAULT_ROWS, ROWS, check, uses_rationale

CHANCE = "multiple choice 25% (4 options); count_events 20% (1-5); sum_digits about 5% (0-18)"
K_SWEEP = (0, 2, 4, 8)
RATIONALE_MARGIN = 8  # rationales of unseen clips may run a few tokens longer than the training split's longest


def _hash(*parts) -> str:
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _read(path: str):
  with open(path) as f:
    return json.load(f)


def _write(path: str, obj) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2)
  os.replace(tmp, path)


def run_in_lanes(fn, specs: list[dict], lanes: list[list[int] | None]) -> list:
  """Runs fn(spec) for every spec in a fresh spawned process, len(lanes) at a time, lane i pinned to its
  cores; returns the results in spec order and re-raises the first failure once the others finished."""
  queue, results, errors, lock = collections.deque(enumerate(specs)), [None] * len(specs), [], threading.Lock()

  def lane(cores):
    ctx = multiprocessing.get_context("spawn")
    while True:
      with lock:
        if not queue or errors:
          return
        i, spec = queue.popleft()
      with concurrent.futures.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        try:
          results[i] = pool.submit(fn, {**spec, "cores": cores}).result()
        except Exception as e:  # not swallowed: re-raised below, once the other lanes have stopped
          with lock:
            errors.append(e)

  threads = [threading.Thread(target=lane, args=(cores,)) for cores in lanes]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  if errors:
    raise errors[0]
  return results


def lanes(workers: int) -> list[list[int] | None]:
  cores = sorted(os.sched_getaffinity(0))
  if workers <= 1 or len(cores) < 2:
    return [None]
  workers = min(workers, len(cores))
  return [cores[i::workers] for i in range(workers)]


# ------------------------------------------------------------------ data


def ensure_benchmark(root: str, counts: dict) -> dict:
  """The embedded benchmark (seed 0) and its prepared train / val shards, as a plain dict for the jobs."""
  from vlatent_jax.data import embedded, synthetic
  bench = embedded.ensure(os.path.join(root, "data"), counts)
  return {"raw": bench.raw, "train": bench.train, "val": bench.val, "tokenizer": bench.tokenizer,
          "lengths": bench.lengths, "digests": sorted(synthetic.read_digests(bench.raw)),
          "fingerprint": _hash(bench.fingerprint, counts)}


def stage1(root: str, preset, bench: dict, cache_dir: str) -> dict:
  """W/pretrained/model and its perception scores, trained unless an identical stage 1 is there."""
  out = os.path.join(root, "pretrained")
  config_text = open(preset.config_path).read()
  fingerprint = _hash(config_text, preset.stage1, preset.corpus_clips, preset.perception_count,
                      bench["fingerprint"], "stage1-v2")
  done = os.path.join(out, "stage1.json")
  if os.path.isfile(done) and _read(done).get("fingerprint") == fingerprint:
    return _read(done)
  shutil.rmtree(out, ignore_errors=True)
  os.makedirs(out)
  print(f"[experiment] stage 1: {preset.corpus_clips} clips, {preset.stage1['train']['steps']} steps", flush=True)
  spec = {"out": out, "tokenizer": bench["tokenizer"], "exclude": bench["digests"], "clips": preset.corpus_clips,
          "perception_count": preset.perception_count, "seed": 0, "workers": 2, "config": preset.config_path,
          "overrides": preset.stage1, "cache_dir": cache_dir, "eval_batch": preset.eval_batch}
  summary = run_in_lanes(jobs.pretrain_job, [spec], [None])[0]
  summary = {**summary, "fingerprint": fingerprint, "model": os.path.join(out, "model")}
  _write(done, summary)
  print(f"[experiment] stage 1: held-out perception accuracy {100 * summary['accuracy']:.1f}% "
        f"{ {k: round(100 * v, 1) for k, v in summary['per_kind'].items()} }", flush=True)
  return summary


def teachers(preset, a, bench: dict, pretrained: dict, cache_dir: str) -> None:
  """Rows that learn from a teacher (LaViT) read the stage-1 model's outputs beside the benchmark's shards,
  written once per stage-1 model and K."""
  latents = {r: jobs.build_config(preset.config_path, preset.stage2, ROWS[r]).latent for r in a.modes}
  rows = [r for r, latent in latents.items() if latent.needs_teacher]
  if not rows:
    return
  ks = {latents[r].num_latents for r in rows}
  if len(ks) != 1:
    raise SystemExit(f"--modes: the teacher rows {rows} use different numbers of latent steps {sorted(ks)}")
  k, note = ks.pop(), {"stage1": pretrained["fingerprint"]}
  written = [os.path.join(bench[s], pipeline.TEACHER_DIR, "spec.json") for s in ("train", "val")]
  if all(os.path.isfile(p) and _read(p).get("note") == note and _read(p).get("num_latents") == k for p in written):
    return
  print(f"[experiment] teacher targets of the stage-1 model, K = {k}", flush=True)
  run_in_lanes(jobs.teacher_job, [{"teacher": pretrained["model"], "data": [bench["train"], bench["val"]],
                                   "num_latents": k, "note": note, "cache_dir": cache_dir}], [None])


# ------------------------------------------------------------------ stage 2


def run_specs(root: str, preset, a, bench: dict, pretrained: dict, cache_dir: str) -> list[dict]:
  """One spec per (row, seed), seed-major (runs that share a compiled program follow each other)."""
  config_text = open(preset.config_path).read()
  split_file = os.path.join(bench["raw"], f"{a.split}.jsonl")
  with open(split_file) as f:
    rows = [json.loads(line) for line in f]
  examples = list({r["task"]: {**r, "video": os.path.join(bench["raw"], r["video"])} for r in rows[::-1]}.values())
  prompt_len = jobs._round(bench["lengths"]["prompt"])
  specs = []
  for seed in a.seeds:
    for row in a.modes:
      answer_len = (bench["lengths"]["reasoning"] + RATIONALE_MARGIN if uses_rationale(row)
                    else bench["lengths"]["answer"])
      overrides = [preset.stage2, ROWS[row], {
          "model": {"init_from": pretrained["model"]}, "train": {"seed": seed},
          "data": {"path": bench["train"], "val_path": bench["val"], "max_prompt_len": prompt_len,
                   "max_answer_len": answer_len},
          "checkpoint": {"every_steps": preset.stage2["train"]["eval_every_steps"], "best_metric": "val_loss",
                         "export_model": False, "keep": 1}}]
      latent_row = ROWS[row]["latent"]["mode"] == "videolatent" and len(ROWS[row]["latent"]) == 1
      spec = {"row": row, "seed": seed, "split": a.split, "config": preset.config_path, "overrides": overrides,
              "workdir": os.path.join(root, "runs", f"{row}_seed{seed}"), "questions": split_file,
              "data": {"train": bench["train"], "val": bench["val"], "tokenizer": bench["tokenizer"]},
              "eval_batch": preset.eval_batch, "cache_dir": cache_dir,
              "k_sweep": list(K_SWEEP) if latent_row else None,
              "latent_examples": examples if latent_row and seed == a.seeds[0] else None}
      spec["fingerprint"] = _hash(config_text, overrides, bench["fingerprint"], pretrained["fingerprint"],
                                  {k: spec[k] for k in ("split", "eval_batch", "k_sweep")},
                                  bool(spec["latent_examples"]), "run-v1")
      specs.append(spec)
  return specs


def finished(spec: dict) -> dict | None:
  path = os.path.join(spec["workdir"], "result.json")
  if os.path.isfile(path) and os.path.isdir(os.path.join(spec["workdir"], "model")):
    result = _read(path)
    if result.get("fingerprint") == spec["fingerprint"]:
      return result
  return None


def curves(root: str, results: list[dict], seed: int, out_path: str) -> None:
  from vlatent_jax.plot import plot_runs, read_metrics
  keep = ("step", "answer_loss", "val_answer_loss", "val_video_attention")
  runs = {r["mode"]: [{k: v for k, v in row.items() if k in keep}
                      for row in read_metrics(os.path.join(root, "runs", f"{r['mode']}_seed{seed}", "metrics.jsonl"))]
          for r in results if r["seed"] == seed}
  plot_runs(runs, out_path, title=f"answer loss and answer -> video attention, seed {seed}")


def parse_args(argv=None):
  p = argparse.ArgumentParser(prog="python -m vlatent_jax.experiment", description=__doc__.split("\n\n")[0])
  p.add_argument("--workdir", required=True)
  p.add_argument("--preset", default="cpu", choices=sorted(PRESETS))
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--modes", default=",".join(DEFAULT_ROWS), help=f"rows, from {sorted(ROWS)}")
  p.add_argument("--steps", type=int, help="stage-2 training steps per run (default: the preset's)")
  p.add_argument("--eval-every", type=int, help="stage-2 validation and checkpoint interval (default: the preset's)")
  p.add_argument("--learning-rate", type=float, help="stage-2 peak learning rate (default: the preset's)")
  p.add_argument("--counts", help="embedded benchmark train,val,test examples (default: the preset's)")
  p.add_argument("--stage1-steps", type=int, help="stage-1 training steps (default: the preset's)")
  p.add_argument("--corpus-clips", type=int, help="stage-1 clips (default: the preset's)")
  p.add_argument("--perception-count", type=int, help="held-out stage-1 perception questions (default: the preset's)")
  p.add_argument("--workers", type=int, help="stage-2 runs side by side (default: the preset's)")
  p.add_argument("--eval-batch-size", type=int, help="questions per generate call (default: the preset's)")
  p.add_argument("--split", default="test", choices=("val", "test"),
                 help="split to report accuracy on (val: for choosing hyper-parameters)")
  a = p.parse_args(argv)
  a.modes = check([m.strip() for m in a.modes.split(",") if m.strip()])
  a.seeds = [int(s) for s in a.seeds.split(",")]
  return a


def resolve_preset(a):
  import dataclasses
  preset = PRESETS[a.preset]
  stage2 = jobs.merge(preset.stage2, {"train": {k: v for k, v in (("steps", a.steps), ("eval_every_steps", a.eval_every))
                                                if v is not None}},
                      {"optim": {"learning_rate": a.learning_rate}} if a.learning_rate else {})
  steps, every = stage2["train"]["steps"], stage2["train"]["eval_every_steps"]
  if steps % every:
    raise SystemExit(f"--steps {steps} must be a multiple of --eval-every {every}")
  stage1_ = jobs.merge(preset.stage1, {"train": {"steps": a.stage1_steps}} if a.stage1_steps else {})
  counts = (dict(zip(("train", "val", "test"), (int(n) for n in a.counts.split(",")))) if a.counts
            else preset.counts)
  return dataclasses.replace(preset, stage1=stage1_, stage2=stage2, counts=counts,
                             corpus_clips=a.corpus_clips or preset.corpus_clips,
                             perception_count=a.perception_count or preset.perception_count,
                             workers=a.workers or preset.workers, eval_batch=a.eval_batch_size or preset.eval_batch)


def main(argv=None) -> dict:
  a = parse_args(argv)
  preset = resolve_preset(a)
  start = time.perf_counter()
  root = os.path.abspath(a.workdir)
  cache_dir = os.path.join(root, ".jax_cache")
  os.makedirs(root, exist_ok=True)
  bench = ensure_benchmark(root, preset.counts)
  pretrained = stage1(root, preset, bench, cache_dir)
  teachers(preset, a, bench, pretrained, cache_dir)
  specs = run_specs(root, preset, a, bench, pretrained, cache_dir)
  todo = [s for s in specs if finished(s) is None]
  for s in todo:
    shutil.rmtree(s["workdir"], ignore_errors=True)
  print(f"[experiment] stage 2: {len(todo)} of {len(specs)} runs to train ({len(specs) - len(todo)} reused), "
        f"{preset.workers} side by side", flush=True)
  run_in_lanes(jobs.run_job, todo, lanes(preset.workers))
  results = [finished(s) for s in specs]
  table = report.summarize(results)
  config = jobs.build_config(preset.config_path, preset.stage2)
  meta = {"preset": preset.name, "steps": preset.stage2["train"]["steps"], "batch_size": config.train.batch_size,
          "learning_rate": config.optim.learning_rate, "seeds": a.seeds, "split": a.split, "counts": preset.counts,
          "num_latents": config.latent.num_latents, "chance": CHANCE, "stage1": pretrained,
          "seconds": time.perf_counter() - start}
  text = report.markdown(table, meta)
  with open(os.path.join(root, "results.md"), "w") as f:
    f.write(text + "\n![accuracy per question type](accuracy.png)\n\n![training curves](curves.png)\n\n"
            "![latent attention](latents.png)\n")
  examples = [ex for r in results for ex in r.get("latent_examples") or []]
  _write(os.path.join(root, "results.json"), {"meta": meta, "table": table, "comparisons": report.comparisons(table),
                                              "runs": results})
  report.plot_accuracy(table, os.path.join(root, "accuracy.png"))
  curves(root, results, a.seeds[0], os.path.join(root, "curves.png"))
  report.plot_latents(examples, os.path.join(root, "latents.png"))
  print(text)
  print(f"[experiment] wrote {root}/results.md, results.json, accuracy.png, curves.png, latents.png")
  return {"table": table, "runs": results}


if __name__ == "__main__":
  main()
