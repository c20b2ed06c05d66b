"""The experiment's tables and figures: mean ± std over seeds, comparisons against sft, diagnostics.

Pure functions of the runs' result dicts (JSON), so a finished experiment can be re-reported.
"""

from __future__ import annotations

import numpy as np

LATENT_ROWS_PREFIX = ("continuous_thought", "videolatent")


def mean_std(values) -> tuple[float, float]:
  values = np.asarray([v for v in values if v is not None], float)
  if not len(values):
    return float("nan"), 0.0
  return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def summarize(results: list[dict]) -> dict:
  """Per row (in first-seen order): mean/std over seeds of overall and per-type accuracy, train time, time
  to answer, tokens per answer, and the latent diagnostics."""
  table = {}
  for mode in dict.fromkeys(r["mode"] for r in results):
    runs = [r for r in results if r["mode"] == mode]
    types = sorted({t for r in runs for t in r["per_type"]})
    val = lambda key: mean_std([(r.get("best_val") or {}).get(key) for r in runs])  # noqa: E731
    row = {
        "seeds": [r["seed"] for r in runs],
        "accuracy": mean_std([r["accuracy"] for r in runs]),
        "per_type": {t: mean_std([r["per_type"].get(t, np.nan) for r in runs]) for t in types},
        "train_seconds": mean_std([r["train_seconds"] for r in runs]),
        "seconds_per_answer": mean_std([r["seconds_per_answer"] for r in runs]),
        "output_tokens": mean_std([r.get("mean_output_tokens") for r in runs]),
        "lim_gate": mean_std([r.get("lim_gate") for r in runs]),
        "latent_cosine": val("val_latent_cosine"),
        "video_attention": val("val_video_attention"),
        "val_answer_loss": val("val_answer_loss"),
    }
    sweeps = [r["k_sweep"] for r in runs if r.get("k_sweep")]
    if sweeps:
      row["k_sweep"] = {k: mean_std([s[k] for s in sweeps if k in s]) for k in sweeps[0]}
    table[mode] = row
  return table


def comparisons(table: dict, reference: str = "sft") -> dict:
  """For each latent row and task: mean difference to `reference` and whether it exceeds the two stds added."""
  if reference not in table:
    return {}
  ref = table[reference]
  out = {}
  for mode, row in table.items():
    if mode == reference or not mode.startswith(LATENT_ROWS_PREFIX):
      continue
    cells = {"overall": (row["accuracy"], ref["accuracy"])}
    cells.update({t: (row["per_type"][t], ref["per_type"][t]) for t in row["per_type"] if t in ref["per_type"]})
    out[mode] = {t: {"difference": a[0] - b[0], "margin": a[1] + b[1], "beats": a[0] - b[0] > a[1] + b[1],
                     "loses": b[0] - a[0] > a[1] + b[1]} for t, (a, b) in cells.items()}
  return out


def _pct(ms) -> str:
  return f"{100 * ms[0]:.1f} ± {100 * ms[1]:.1f}"


def markdown(table: dict, meta: dict) -> str:
  types = sorted({t for row in table.values() for t in row["per_type"]})
  lines = [f"# Headline experiment: {meta['steps']} steps x batch {meta['batch_size']}, seeds {meta['seeds']}", "",
           f"Accuracy (%) on the embedded benchmark's {meta['split']} split, mean ± std over seeds; each run's checkpoint "
           "chosen by validation loss. Train time per run; time to answer per question (batched, compiled).", "",
           "| mode | overall | " + " | ".join(types) + " | train time (s) | time to answer (ms) |",
           "|---|---|" + "---|" * len(types) + "---|---|"]
  for mode, row in table.items():
    cells = [_pct(row["accuracy"])] + [_pct(row["per_type"][t]) for t in types]
    lines.append(f"| {mode} | " + " | ".join(cells) + f" | {row['train_seconds'][0]:.0f} | "
                 f"{1000 * row['seconds_per_answer'][0]:.1f} |")
  lines += ["", f"Chance level: {meta['chance']}", ""]
  if "stage1" in meta:
    s1 = meta["stage1"]
    kinds = ", ".join(f"{k} {100 * v:.1f}" for k, v in sorted(s1["per_kind"].items()))
    lines += [f"Stage 1 (the embedded pretrained VLM, shared by every row): {s1['steps']} steps x batch "
              f"{s1['batch_size']} on {s1['corpus'].get('clips', '?')} clips ({s1['corpus'].get('records', '?')} "
              f"records); held-out perception accuracy {100 * s1['accuracy']:.1f}% ({kinds}).", ""]
  comp = comparisons(table)
  if comp:
    lines += ["## Latent rows against sft", "",
              "Difference in accuracy points (row - sft); **beats** / **loses** when it exceeds the two stds added.",
              "", "| mode | overall | " + " | ".join(types) + " |", "|---|---|" + "---|" * len(types)]
    for mode, cells in comp.items():
      def cell(t):
        c = cells.get(t)
        if c is None:
          return "-"
        verdict = " **beats**" if c["beats"] else " **loses**" if c["loses"] else ""
        return f"{100 * c['difference']:+.1f} (±{100 * c['margin']:.1f}){verdict}"
      lines.append(f"| {mode} | {cell('overall')} | " + " | ".join(cell(t) for t in types) + " |")
    lines.append("")
  lines += ["## Diagnostics", "",
            "Tokens per answer (generated, end token included); LIM gate g after training; mean pairwise cosine "
            "of the K latents and the answer's attention mass on video tokens (mean over layers and heads), both "
            "on validation at the chosen checkpoint.", "",
            "| mode | tokens / answer | LIM gate | latent cosine | answer → video attention |", "|---|---|---|---|---|"]
  num = lambda ms, f="{:.3f}": "-" if ms is None or np.isnan(ms[0]) else f.format(ms[0]) + f" ± {ms[1]:.3f}"  # noqa: E731
  for mode, row in table.items():
    lines.append(f"| {mode} | {num(row.get('output_tokens'), '{:.1f}')} | {num(row.get('lim_gate'))} | "
                 f"{num(row.get('latent_cosine'))} | {num(row.get('video_attention'))} |")
  for mode, row in table.items():
    if row.get("k_sweep"):
      ks = list(row["k_sweep"])
      lines += ["", f"{mode} answering after K latent steps at inference (trained with K = {meta.get('num_latents')}; "
                "K = 0 answers straight after the prompt):", "",
                "| K | " + " | ".join(ks) + " |", "|---|" + "---|" * len(ks),
                "| accuracy (%) | " + " | ".join(_pct(row["k_sweep"][k]) for k in ks) + " |"]
  if "seconds" in meta:
    lines += ["", f"Wall time of this invocation: {meta['seconds']:.0f} s (finished runs with an identical "
              "configuration are reused, not retrained)"]
  return "\n".join(lines) + "\n"


def plot_accuracy(table: dict, out_path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  types = ["overall"] + sorted({t for row in table.values() for t in row["per_type"]})
  fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(types)), 4.2))
  width = 0.8 / max(1, len(table))
  for i, (mode, row) in enumerate(table.items()):
    stats = [row["accuracy"]] + [row["per_type"].get(t, (np.nan, 0.0)) for t in types[1:]]
    ax.bar(np.arange(len(types)) + i * width, [100 * m for m, _ in stats], width, yerr=[100 * s for _, s in stats],
           label=mode, capsize=3)
  ax.set_xticks(np.arange(len(types)) + width * (len(table) - 1) / 2, types, rotation=20, ha="right")
  ax.set_ylabel("accuracy (%)")
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(out_path, dpi=120)
  plt.close(fig)


def plot_latents(examples: list[dict], out_path: str) -> None:
  """One panel per test question: each latent step's LIM attention over the clip's temporal slices, with
  the question's evidence frames marked."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  n = max(1, len(examples))
  fig, axes = plt.subplots(n, 1, figsize=(8, 1.9 * n), squeeze=False)
  for ax, ex in zip(axes[:, 0], examples):
    att = np.asarray(ex["attention"], float)  # [K, T]
    per = ex.get("frames_per_slice", 2)
    ax.imshow(att, aspect="auto", cmap="viridis", vmin=0, extent=(0, att.shape[1] * per, att.shape[0] - 0.5, -0.5))
    for first, last in ex.get("evidence", []):
      ax.axvspan(first, last + 1, ymin=0.9, ymax=1.0, color="red", lw=0)  # a strip: the heat map stays readable
      ax.axvline(first, color="red", lw=1.2)
      ax.axvline(last + 1, color="red", lw=1.2)
    ax.set_ylabel("latent k")
    ax.set_yticks(range(att.shape[0]))
    ax.set_title(f"{ex['task']}: {ex['question'][:70]} (answer {ex['answer']}, output {ex['output'].strip()[:20]!r})",
                 fontsize=8)
  axes[-1, 0].set_xlabel("frame (red lines and top strip: evidence of the answer; colour: LIM attention)")
  fig.tight_layout()
  fig.savefig(out_path, dpi=110)
  plt.close(fig)
