"""Predictions files: one JSON object {"id": question id, "output": the model's text} per line.

`python -m vlatent_jax.eval` writes one beside its reports; `python -m vlatent_jax.eval.score` scores one
without a model, so that the same outputs can be scored here and by another toolkit. Other keys on a line are
ignored; a line without a text "id" and "output", or repeating an id, is skipped and reported.
"""

from __future__ import annotations

import json
import os

from vlatent_jax.eval.readers import SkippedRow


def write(path: str, records: list[dict]) -> str:
  """Writes {"id", "output"} per record to `path` (atomically); returns `path`."""
  tmp = path + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    for r in records:
      f.write(json.dumps({"id": r["id"], "output": r["output"]}, ensure_ascii=False) + "\n")
  os.replace(tmp, path)
  return path


def read(path: str) -> tuple[dict[str, str], list[SkippedRow]]:
  """({id: output}, the lines skipped with their reasons)."""
  outputs: dict[str, str] = {}
  first: dict[str, int] = {}
  skipped = []
  with open(path, encoding="utf-8") as f:
    for line, raw in enumerate(f, start=1):
      if not raw.strip():
        continue
      try:
        obj = json.loads(raw)
      except json.JSONDecodeError as e:
        skipped.append(SkippedRow(line, f"bad JSON: {e.msg} at column {e.colno}", None, path, None))
        continue
      if not isinstance(obj, dict):
        skipped.append(SkippedRow(line, f"line is a JSON {type(obj).__name__}, not an object", None, path, None))
        continue
      qid, output = obj.get("id"), obj.get("output")
      if isinstance(qid, int) and not isinstance(qid, bool):
        qid = str(qid)
      bad = next(((k, f"field '{k}' must be text, got {type(v).__name__}" if v is not None else f"missing field '{k}'")
                  for k, v in (("id", qid), ("output", output)) if not isinstance(v, str)), None)
      if bad is not None:
        skipped.append(SkippedRow(line, bad[1], None, path, bad[0]))
      elif qid in first:
        skipped.append(SkippedRow(line, f"duplicate id {qid!r} (first on line {first[qid]})", None, path, "id"))
      else:
        first[qid], outputs[qid] = line, output
  return outputs, skipped
