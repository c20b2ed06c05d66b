"""Training curves from `metrics.jsonl` to a PNG, one subplot per metric group.

    python -m vlatent_jax.plot W [W2 ...] [--out PATH]

Each argument is a workdir holding `metrics.jsonl` (or the file itself); several
runs are overlaid, labelled by their directory name, e.g. an sft and a
videolatent run. The default output is `W/curves.png` of the first run.
Groups: losses (`loss`, `*_loss`, eval `val_*loss`), learning rate, grad norm,
throughput (`*_per_s`, `*_per_second`), latent statistics, and the rest.

Rendering uses matplotlib's Figure API with the Agg canvas: no pyplot, no display.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings

PNG_NAME = "curves.png"
METRICS_NAME = "metrics.jsonl"
GROUPS = ("loss", "learning rate", "grad norm", "throughput", "latent", "eval", "other")
LINESTYLES = ("-", "--", ":", "-.")


class MalformedLinesWarning(UserWarning):
  """Some lines of a metrics file were skipped."""


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_metrics(path: str) -> list[dict]:
  """Rows of a metrics.jsonl (a file, or a workdir holding one), in file order.

  Blank, non-JSON, non-object or step-less lines are skipped with one MalformedLinesWarning naming the
  file, their count and line numbers. Raises FileNotFoundError for a missing file and ValueError when no
  row is left.
  """
  if os.path.isdir(path):
    path = os.path.join(path, METRICS_NAME)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: no such metrics file")
  rows, bad = [], []
  with open(path) as f:
    for lineno, line in enumerate(f, 1):
      text = line.strip()
      if not text:
        bad.append(f"line {lineno}: empty")
        continue
      try:
        row = json.loads(text)
      except json.JSONDecodeError as e:
        bad.append(f"line {lineno}: invalid JSON ({e.msg})")
        continue
      if not isinstance(row, dict) or not _number(row.get("step")):
        bad.append(f"line {lineno}: not an object with a numeric 'step'")
        continue
      rows.append(row)
  if bad:
    shown = "; ".join(bad[:5]) + (f"; ... {len(bad) - 5} more" if len(bad) > 5 else "")
    warnings.warn(f"{path}: skipped {len(bad)} malformed line(s): {shown}", MalformedLinesWarning, stacklevel=2)
  if not rows:
    raise ValueError(f"{path}: no metrics rows" + (f" ({len(bad)} malformed line(s))" if bad else " (empty file)"))
  return rows


def group_of(key: str) -> str:
  if key == "loss" or key.endswith("_loss"):
    return "loss"
  if key == "learning_rate":
    return "learning rate"
  if key == "grad_norm":
    return "grad norm"
  if key.endswith(("_per_s", "_per_second")):
    return "throughput"
  if key.startswith("latent_") or key == "lim_gate":
    return "latent"
  if key.startswith(("val_", "eval_")):
    return "eval"
  return "other"


def series(rows: list[dict]) -> dict[str, tuple[list[float], list[float]]]:
  """metric -> (steps, values), sorted by step. A resumed run re-logs steps; the later row wins."""
  by_key: dict[str, dict[float, float]] = {}
  for row in rows:
    for key, value in row.items():
      if key != "step" and _number(value):
        by_key.setdefault(key, {})[row["step"]] = float(value)
  return {key: (sorted(points), [points[s] for s in sorted(points)]) for key, points in by_key.items()}


def plot_runs(runs: dict[str, list[dict]], out_path: str, title: str | None = None) -> str:
  """Draws every run's curves into one PNG at `out_path`; returns the path.

  One run: a colour per metric. Several: a colour per run and a line style per metric.
  Raises ValueError when no run has a numeric metric besides `step`.
  """
  from matplotlib.figure import Figure

  per_run = {label: series(rows) for label, rows in runs.items()}
  groups: dict[str, list[str]] = {}
  for curves in per_run.values():
    for key in curves:
      keys = groups.setdefault(group_of(key), [])
      if key not in keys:
        keys.append(key)
  if not groups:
    raise ValueError(f"nothing to plot: no numeric metrics besides 'step' in runs {sorted(runs)}")
  names = [g for g in GROUPS if g in groups]
  cols = 1 if len(names) == 1 else 2
  nrows = math.ceil(len(names) / cols)
  fig = Figure(figsize=(6.5 * cols, 3.6 * nrows), layout="constrained")
  axes = fig.subplots(nrows, cols, squeeze=False).ravel()
  colors = [f"C{i % 10}" for i in range(max(len(runs), max(len(k) for k in groups.values())))]
  many = len(runs) > 1
  for ax, name in zip(axes, names):
    keys = sorted(groups[name], key=lambda k: (k != "loss", k))  # the total loss first
    # Throughput: examples/s and steps/s differ by the batch size, so steps/s gets its own axis.
    right = ax.twinx() if name == "throughput" and len(keys) > 1 else None
    for r, (label, curves) in enumerate(per_run.items()):
      for m, key in enumerate(keys):
        if key not in curves:
          continue
        steps, values = curves[key]
        target = right if right is not None and key.startswith("steps_per") else ax
        color = colors[r] if many else colors[m]
        style = LINESTYLES[m % len(LINESTYLES)] if many else "-"
        marker = "o" if len(steps) == 1 or key.startswith(("val_", "eval_")) else None
        target.plot(steps, values, color=color, linestyle=style, marker=marker, markersize=3, linewidth=1.2,
                    label=f"{label}: {key}" if many else key)
    ax.set_title(name)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if right is not None:
      more = right.get_legend_handles_labels()
      handles, labels = handles + more[0], labels + more[1]
      right.set_ylabel("steps/s (right)")
    (right or ax).legend(handles, labels, fontsize="small")  # on the top axis, or the twin's lines hide it
  for ax in axes[len(names):]:
    ax.set_visible(False)
  if title:
    fig.suptitle(title)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  fig.savefig(out_path, dpi=110, format="png")
  return out_path


def run_labels(paths: list[str]) -> list[str]:
  """Directory names; the full paths given when two runs would share a name."""
  names = []
  for p in paths:
    p = os.path.normpath(p)
    directory = os.path.dirname(p) if os.path.isfile(p) else p
    names.append(os.path.basename(os.path.abspath(directory)))
  if len(set(names)) < len(names):
    return [os.path.normpath(p) for p in paths]
  return names


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(prog="python -m vlatent_jax.plot", description=__doc__.split("\n")[0])
  p.add_argument("runs", nargs="+", metavar="W", help="workdir with metrics.jsonl (or the file); several overlay")
  p.add_argument("--out", help=f"output PNG (default: <first W>/{PNG_NAME})")
  p.add_argument("--title", help="figure title")
  args = p.parse_args(argv)
  warnings.formatwarning = lambda message, *a, **k: f"warning: {message}\n"
  try:
    runs = {label: read_metrics(path) for label, path in zip(run_labels(args.runs), args.runs)}
    first = args.runs[0] if os.path.isdir(args.runs[0]) else os.path.dirname(args.runs[0])
    out = plot_runs(runs, args.out or os.path.join(first, PNG_NAME), args.title)
  except (OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 1
  print(f"wrote {out} ({', '.join(f'{k}: {len(v)} rows' for k, v in runs.items())})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
