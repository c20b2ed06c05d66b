"""Command line: score a predictions file against a benchmark's files, without a model.

  python -m vlatent_jax.eval.score --bench NAME --data PATH --predictions P.jsonl [--split test] [--out DIR]

P.jsonl holds one {"id": question id, "output": model text} per line, as `python -m vlatent_jax.eval` writes it
(<bench>_<mode>.predictions.jsonl), so the same outputs can be scored here and by another toolkit. The answers
are extracted and scored exactly as in eval, with the benchmark's official aggregate next to plain accuracy.
Writes <out>/<stem>_score.json and .md (default out: the predictions file's folder) and prints the tables.
Questions without a prediction are counted and left out of the scores; predictions for ids the benchmark does
not have are counted. Bad input prints one line and exits 2; nothing to score exits 1.
"""

from __future__ import annotations

import argparse
import os
import sys

from vlatent_jax.eval import official, predictions, readers, report, scoring


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(prog="python -m vlatent_jax.eval.score", description=__doc__.splitlines()[0])
  p.add_argument("--bench", required=True, type=str.lower, choices=readers.BENCHMARKS)
  p.add_argument("--data", required=True, help="the benchmark's file or folder (as for python -m vlatent_jax.eval)")
  p.add_argument("--predictions", required=True, help='JSON Lines, one {"id", "output"} per line')
  p.add_argument("--split", default="test", help="embedded benchmark split when --data is its folder")
  p.add_argument("--out", help="results folder (default: the predictions file's folder)")
  return p


def score(bench: str, data: str, predictions_path: str, split: str = "test") -> dict:
  """The eval report's summary for the outputs in `predictions_path`; OSError / ValueError on bad input."""
  questions, bad_rows = readers.read(bench, data, split=split)
  if not os.path.isfile(predictions_path):
    raise FileNotFoundError(f"predictions file not found: {predictions_path}")
  outputs, bad_predictions = predictions.read(predictions_path)
  records = [scoring.record(q, outputs[q.id]) for q in questions if q.id in outputs]
  known = {q.id for q in questions}
  return {"benchmark": bench, "data": os.path.abspath(data), "predictions": os.path.abspath(predictions_path),
          **report.summarize(records, []),
          "official": official.aggregate(readers.benchmark_name(bench), records),
          "questions": len(questions), "unanswered": len(questions) - len(records),
          "unanswered_ids": [q.id for q in questions if q.id not in outputs],
          "unknown_ids": [i for i in outputs if i not in known],
          "bad_rows": [row._asdict() for row in bad_rows],
          "bad_predictions": [row._asdict() for row in bad_predictions], "records": records}


def main(argv=None) -> int:
  args = _parser().parse_args(argv)
  try:
    results = score(args.bench, args.data, args.predictions, args.split)
  except (OSError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  report.warn_skipped([readers.SkippedRow(**r) for r in results["bad_rows"] + results["bad_predictions"]], args.data)
  stem = os.path.splitext(os.path.basename(args.predictions))[0].removesuffix(".predictions")
  out = args.out or os.path.dirname(os.path.abspath(args.predictions))
  title = f"{args.bench} ({os.path.basename(args.predictions)})"
  json_path, md_path = report.write(results, out, f"{stem}_score", title)
  with open(md_path) as f:
    print(f.read())
  print(f"wrote {json_path} and {md_path}")
  return 0 if results["n"] else 1


if __name__ == "__main__":
  sys.exit(main())
