"""Aggregating per-question scores and writing results: `<name>.json` (everything) and `<name>.md` (tables)."""

from __future__ import annotations

import json
import os
from collections import defaultdict


def _groups(records: list[dict], key: str) -> dict[str, dict]:
  scores = defaultdict(list)
  for r in records:
    scores[r[key]].append(r["score"])
  return {k: {"n": len(v), "accuracy": sum(v) / len(v)} for k, v in sorted(scores.items())}


def summarize(records: list[dict], skipped: list[dict]) -> dict:
  """Overall accuracy (mean score; None without answers), per category and per question type."""
  n = len(records)
  steps = [r["latent_steps"] for r in records]
  kinds = defaultdict(int)
  for s in skipped:
    kinds[s["kind"]] += 1
  return {"accuracy": sum(r["score"] for r in records) / n if n else None, "n": n, "skipped": len(skipped),
          "skipped_by_kind": dict(sorted(kinds.items())), "per_type": _groups(records, "category"),
          "by_question_type": _groups(records, "question_type"),
          "mean_latent_steps": sum(steps) / n if n else None}


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
  skipped = ", ".join(f"{k}: {v}" for k, v in results.get("skipped_by_kind", {}).items())
  lines += [f"- skipped videos: {results['skipped']}" + (f" ({skipped})" if skipped else "")]
  if results.get("bad_rows") is not None:
    lines += [f"- malformed rows: {len(results['bad_rows'])}"]
  lines += [(f"- seconds per answer: {_seconds(results.get('seconds_per_answer'))} "
            f"(generation total {_seconds(results.get('generate_seconds'))} s, first call with compilation "
            f"{_seconds(results.get('warmup_seconds'))} s, run total {_seconds(results.get('total_seconds'))} s)"),
            f"- mean latent steps: {_number(results.get('mean_latent_steps'))}", ""]
  return "\n".join(lines)


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
