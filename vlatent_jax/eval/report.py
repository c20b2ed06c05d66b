"""Aggregating per-question scores and writing results: `<name>.json` (everything) and `<name>.md` (tables).

The Markdown report holds plain accuracy per category and question type, the benchmark's own aggregate
(`results["official"]`, from `official.aggregate`) with its tables, and the rows and videos skipped.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict


def _groups(records: list[dict], key: str) -> dict[str, dict]:
  scores = defaultdict(list)
  for r in records:
    scores[r[key]].append(r["score"])
  return {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(scores.items())}


def summarize(records: list[dict], skipped: list[dict]) -> dict:
  """Overall accuracy (mean score; None without answers), per category and per question type."""
  n = len(records)
  steps = [r["latent_steps"] for r in records if r.get("latent_steps") is not None]
  kinds = defaultdict(int)
  for s in skipped:
    kinds[s["kind"]] += 1
  return {"accuracy": sum(r["score"] for r in records) / n if n else None, "n": n, "skipped": len(skipped),
          "skipped_by_kind": dict(sorted(kinds.items())), "per_type": _groups(records, "category"),
          "by_question_type": _groups(records, "question_type"),
          "mean_latent_steps": sum(steps) / len(steps) if steps else None}


def _pct(value) -> str:
  return "n/a" if value is None else f"{100 * value:.1f}"


def _seconds(value) -> str:
  return "n/a" if value is None else f"{value:.3f}"


def _number(value) -> str:
  return "n/a" if value is None else f"{value:.2f}"


def markdown(results: dict, title: str = "Evaluation") -> str:
  s = results.get("settings", {})
  lines = [f"# {title}", ""]
  if s:
    frames = ", ".join(f"{k}={v}" for k, v in s.get("frames", {}).items())
    lines += [(f"mode `{s.get('mode')}`, {s.get('num_latents')} latent steps, frames {frames}, "
              f"batch size {s.get('batch_size')}"), ""]
  lines += ["| category | n | accuracy (%) |", "|---|---:|---:|"]
  lines += [f"| {name} | {g['n']} | {_pct(g['accuracy'])} |" for name, g in results["per_type"].items()]
  lines += [f"| **overall** | **{results['n']}** | **{_pct(results['accuracy'])}** |", ""]
  kinds = results.get("by_question_type") or {}
  if len(kinds) > 1:  # e.g. VSI-Bench: multiple-choice accuracy next to numeric MRA
    lines += ["| question type | n | score (%) |", "|---|---:|---:|"]
    lines += [f"| {name} | {g['n']} | {_pct(g['accuracy'])} |" for name, g in kinds.items()] + [""]
  lines += _official(results.get("official"))
  skipped = ", ".join(f"{k}: {v}" for k, v in results.get("skipped_by_kind", {}).items())
  if "skipped" in results and "skipped_videos" in results:
    lines += [f"- skipped videos: {results['skipped']}" + (f" ({skipped})" if skipped else "")]
  if results.get("bad_rows") is not None:
    lines += [f"- rows skipped for bad data: {len(results['bad_rows'])}"]
  if results.get("unanswered") is not None:
    lines += [f"- questions without a prediction: {results['unanswered']}",
              f"- predictions for no known question: {len(results.get('unknown_ids') or [])}",
              f"- prediction lines skipped: {len(results.get('bad_predictions') or [])}"]
  if "seconds_per_answer" in results:
    lines += [(f"- seconds per answer: {_seconds(results.get('seconds_per_answer'))} "
              f"(generation total {_seconds(results.get('generate_seconds'))} s, first call with compilation "
              f"{_seconds(results.get('warmup_seconds'))} s, run total {_seconds(results.get('total_seconds'))} s)")]
    if results.get("questions_per_second") is not None:
      lines += [f"- questions per second: {results['questions_per_second']:.2f} (answered questions over the run "
                f"total, compilation and video decoding included)"]
  if results.get("mean_latent_steps") is not None or "seconds_per_answer" in results:
    lines += [f"- mean latent steps: {_number(results.get('mean_latent_steps'))}"]
  return "\n".join(lines + [""])


def _official(official: dict | None) -> list[str]:
  """The benchmark's own aggregate: its score, then one table per grouping."""
  if not official:
    return []
  lines = [f"**Official aggregate** ({official['metric']}): **{_pct(official['score'])}** over {official['n']} "
           "questions", ""]
  for note in official.get("notes") or []:
    lines += [f"- {note}"]
  if official.get("notes"):
    lines += [""]
  for name, rows in official["tables"].items():
    metric = any("metric" in g for g in rows.values())
    lines += [f"| {name} | n | score (%) |" + (" metric |" if metric else ""),
              "|---|---:|---:|" + ("---|" if metric else "")]
    lines += [f"| {group} | {g['n']} | {_pct(g['score'])} |" + (f" {g.get('metric', '')} |" if metric else "")
              for group, g in rows.items()] + [""]
  return lines


def warn_skipped(rows, data: str, stream=None) -> None:
  """One warning line per skipped row (readers.SkippedRow): file, row, field and reason."""
  for row in rows:
    where = f"skipped row {row.line}" if row.line else "skipped file"
    field = f", field '{row.field}'" if row.field else ""
    print(f"warning: {row.file or data}: {where}{field}: {row.reason}", file=stream or sys.stderr)


def write(results: dict, out_dir: str, name: str, title: str | None = None) -> tuple[str, str]:
  """Writes <out_dir>/<name>.json and <name>.md; returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  json_path, md_path = os.path.join(out_dir, f"{name}.json"), os.path.join(out_dir, f"{name}.md")
  for path, text in ((json_path, json.dumps(results, indent=1, default=str) + "\n"),
                     (md_path, markdown(results, title or name))):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  return json_path, md_path
