"""The headline experiment: what latent self-forcing buys over plain fine-tuning, end to end on CPU.

    python -m vlatent_jax.experiment --workdir runs/headline

1. generates the embedded benchmark (train / val / test) and prepares train and val shards,
2. trains `sft`, `continuous_thought` and `videolatent` on configs/tiny.py with the same budget
   (steps, batch, optimizer) for each of 3 seeds,
3. evaluates each run's checkpoint chosen by validation loss on the held-out test split,
4. prints and writes `results.md` / `results.json` with `accuracy.png` (accuracy per question type)
   and `curves.png` (training curves): mean +/- std over seeds, train time and time to answer.

Nothing is tuned on test: the only selection (which checkpoint of a run to evaluate) uses the
validation loss. Finished runs are reused when the command is run again.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

MODES = ("sft", "continuous_thought", "videolatent")
CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "tiny.py")


def tiny_config(mode: str, seed: int, steps: int, paths, eval_every: int, learning_rate: float | None = None):
  """configs/tiny.py with the run's mode, seed and budget; validation picks the checkpoint."""
  from vlatent_jax.config import load_config_file, parse
  c = load_config_file(CONFIG)
  c.latent.mode = mode
  c.train.seed = seed
  c.train.steps = steps
  if learning_rate:
    c.optim.learning_rate = learning_rate
  c.train.eval_every_steps = eval_every
  c.train.log_every_steps = max(1, steps // 5)
  if paths is not None:  # None: the embedded benchmark's own location under the workdir
    c.data.path, c.data.val_path = paths.train, paths.val
  c.checkpoint.every_steps = eval_every
  c.checkpoint.best_metric = "val_loss"
  c.checkpoint.export_model = False
  return parse(c)


def run_one(root: str, mode: str, seed: int, steps: int, paths, raw: str, eval_every: int, batch_size: int,
            learning_rate: float | None = None, split: str = "test") -> dict:
  """Trains one run (or reuses a finished one), exports its best-by-val checkpoint, evaluates it on test."""
  from vlatent_jax.eval import harness, readers
  from vlatent_jax.train import export
  from vlatent_jax.train.loop import export_model, train
  workdir = run_dir(root, mode, seed, learning_rate)
  done = os.path.join(workdir, f"result_{split}.json")
  if os.path.isfile(done):
    with open(done) as f:
      return json.load(f)
  config = tiny_config(mode, seed, steps, paths, eval_every, learning_rate)
  start = time.perf_counter()
  train(config, workdir)
  train_seconds = time.perf_counter() - start
  run_config, model_config, params, best_step = export.restore_params(workdir, best=True)
  model_dir = os.path.join(workdir, "model")
  export_model(model_dir, params, model_config, run_config, paths, best_step)
  model, processor = harness.load(model_dir)
  questions, errors = readers.read("embedded", os.path.join(raw, f"{split}.jsonl"))
  if errors:
    raise ValueError(f"{raw}/{split}.jsonl: {len(errors)} malformed rows, first {errors[0]}")
  results = harness.evaluate(model, processor, questions, batch_size=batch_size, progress=False)
  result = {"mode": mode, "seed": seed, "steps": steps, "learning_rate": config.optim.learning_rate, "split": split,
            "train_seconds": train_seconds, "best_val_loss": _best_val_loss(workdir),
            "accuracy": results["accuracy"], "per_type": {k: v["accuracy"] for k, v in results["per_type"].items()},
            "seconds_per_answer": results["seconds_per_answer"], "n": results["n"], "skipped": results["skipped"],
            "mean_latent_steps": results.get("mean_latent_steps"), "best_step": best_step}
  with open(done, "w") as f:
    json.dump(result, f, indent=2)
  return result


def run_dir(root: str, mode: str, seed: int, learning_rate: float | None = None) -> str:
  return os.path.join(root, "runs", f"{mode}_seed{seed}" + (f"_lr{learning_rate:g}" if learning_rate else ""))


def _best_val_loss(workdir: str) -> float:
  from vlatent_jax.plot import read_metrics
  return min(r["val_loss"] for r in read_metrics(os.path.join(workdir, "metrics.jsonl")) if "val_loss" in r)


def _mean_std(values) -> tuple[float, float]:
  values = np.asarray(values, float)
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarize(results: list[dict]) -> dict:
  """Per mode: mean/std over seeds of overall and per-type accuracy, train time, time to answer."""
  table = {}
  for mode in [m for m in MODES if any(r["mode"] == m for r in results)]:
    runs = [r for r in results if r["mode"] == mode]
    types = sorted({t for r in runs for t in r["per_type"]})
    table[mode] = {
        "seeds": [r["seed"] for r in runs],
        "accuracy": _mean_std([r["accuracy"] for r in runs]),
        "per_type": {t: _mean_std([r["per_type"].get(t, np.nan) for r in runs]) for t in types},
        "train_seconds": _mean_std([r["train_seconds"] for r in runs]),
        "seconds_per_answer": _mean_std([r["seconds_per_answer"] for r in runs]),
    }
  return table


def markdown(table: dict, meta: dict) -> str:
  types = sorted({t for row in table.values() for t in row["per_type"]})
  pct = lambda ms: f"{100 * ms[0]:.1f} ± {100 * ms[1]:.1f}"  # noqa: E731
  lines = [f"# Headline experiment: {meta['steps']} steps x batch {meta['batch_size']}, seeds {meta['seeds']}", "",
           f"Accuracy (%) on the embedded benchmark's {meta['split']} split, mean ± std over seeds; each run's checkpoint "
           "chosen by validation loss. Train time per run; time to answer per question (batched, compiled).", "",
           "| mode | overall | " + " | ".join(types) + " | train time (s) | time to answer (ms) |",
           "|---|---|" + "---|" * len(types) + "---|---|"]
  for mode, row in table.items():
    cells = [pct(row["accuracy"])] + [pct(row["per_type"][t]) for t in types]
    lines.append(f"| {mode} | " + " | ".join(cells) + f" | {row['train_seconds'][0]:.0f} | "
                 f"{1000 * row['seconds_per_answer'][0]:.1f} |")
  lines += ["", f"Chance level: {meta['chance']}", f"Wall time of this invocation: {meta['seconds']:.0f} s (finished runs are reused, not retrained)", "",
            "The latent modes' answer loss also averages the <|latent_end|> token, which they learn to predict "
            "early: compare accuracies, not answer losses, across modes.", ""]
  return "\n".join(lines)


def plot_accuracy(table: dict, out_path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  types = ["overall"] + sorted({t for row in table.values() for t in row["per_type"]})
  fig, ax = plt.subplots(figsize=(max(8, 1.4 * len(types)), 4))
  width = 0.8 / max(1, len(table))
  for i, (mode, row) in enumerate(table.items()):
    stats = [row["accuracy"]] + [row["per_type"].get(t, (np.nan, 0.0)) for t in types[1:]]
    ax.bar(np.arange(len(types)) + i * width, [100 * m for m, _ in stats], width, yerr=[100 * s for _, s in stats],
           label=mode, capsize=3)
  ax.set_xticks(np.arange(len(types)) + width * (len(table) - 1) / 2, types, rotation=20, ha="right")
  ax.set_ylabel("accuracy (%)")
  ax.legend()
  fig.tight_layout()
  fig.savefig(out_path, dpi=120)
  plt.close(fig)


def main(argv=None) -> dict:
  p = argparse.ArgumentParser(description="Train sft / continuous_thought / videolatent on the embedded "
                                          "benchmark and compare them on its test split.")
  p.add_argument("--workdir", required=True)
  p.add_argument("--steps", type=int, default=300, help="training steps per run (same for every mode)")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--modes", default=",".join(MODES))
  p.add_argument("--eval-every", type=int, default=100, help="validation (and checkpoint) interval in steps")
  p.add_argument("--eval-batch-size", type=int, default=50)
  p.add_argument("--learning-rate", type=float, default=None, help="default: configs/tiny.py's")
  p.add_argument("--counts", default="2000,200,400", help="embedded benchmark train,val,test examples")
  p.add_argument("--split", default="test", choices=("val", "test"),
                 help="split to report accuracy on (val: for choosing hyper-parameters)")
  a = p.parse_args(argv)
  from vlatent_jax.plot import plot_runs, read_metrics
  from vlatent_jax.train.loop import ensure_data
  modes = [m.strip() for m in a.modes.split(",") if m.strip()]
  if unknown := set(modes) - set(MODES):
    raise SystemExit(f"--modes: unknown {sorted(unknown)}; choose from {MODES}")
  seeds = [int(s) for s in a.seeds.split(",")]
  if a.steps % a.eval_every:
    raise SystemExit(f"--steps {a.steps} must be a multiple of --eval-every {a.eval_every}")
  start = time.perf_counter()
  root = os.path.abspath(a.workdir)
  counts = dict(zip(("train", "val", "test"), (int(n) for n in a.counts.split(","))))
  paths = ensure_data(tiny_config(modes[0], 0, a.steps, None, a.eval_every), root, counts)
  raw = os.path.join(root, "data", "raw")
  results = []
  for seed in seeds:
    for mode in modes:
      print(f"[experiment] {mode} seed {seed}", flush=True)
      results.append(run_one(root, mode, seed, a.steps, paths, raw, a.eval_every, a.eval_batch_size,
                             a.learning_rate, a.split))
      r = results[-1]
      print(f"[experiment] {mode} seed {seed}: {a.split} accuracy {100 * r['accuracy']:.1f}% "
            f"(train {r['train_seconds']:.0f} s, {1000 * r['seconds_per_answer']:.1f} ms/answer)", flush=True)
  table = summarize(results)
  batch = tiny_config(modes[0], 0, a.steps, paths, a.eval_every).train.batch_size
  meta = {"steps": a.steps, "batch_size": batch, "seeds": seeds, "split": a.split, "seconds": time.perf_counter() - start,
          "chance": "multiple choice 25% (4 options); numbers 1/5 (count_events) and 1/19 (sum_digits)"}
  text = markdown(table, meta)
  with open(os.path.join(root, "results.md"), "w") as f:
    f.write(text + "\n![accuracy per question type](accuracy.png)\n\n![training curves](curves.png)\n")
  with open(os.path.join(root, "results.json"), "w") as f:
    json.dump({"meta": meta, "table": table, "runs": results}, f, indent=2)
  plot_accuracy(table, os.path.join(root, "accuracy.png"))
  # The answer loss is the one term every mode shares: one run per mode keeps the figure readable.
  curves = {}
  for r in results:
    if r["seed"] == seeds[0]:
      rows = read_metrics(os.path.join(run_dir(root, r["mode"], r["seed"], a.learning_rate), "metrics.jsonl"))
      curves[r["mode"]] = [{k: v for k, v in row.items() if k in ("step", "answer_loss", "val_answer_loss")}
                           for row in rows]
  plot_runs(curves, os.path.join(root, "curves.png"), title=f"answer loss, seed {seeds[0]}")
  print(text)
  print(f"[experiment] wrote {root}/results.md, results.json, accuracy.png, curves.png")
  return {"table": table, "runs": results}


if __name__ == "__main__":
  main()
