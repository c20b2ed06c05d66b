"""Evaluation: benchmark readers, Video-R1-style scoring, the batched harness and result reports.

  readers.read(bench, path, limit=None) -> (questions, skipped)  released benchmark files -> Question
  rows.iter_rows(path), rows.data_files(path, pattern)           file records, BadRow naming the field
  scoring.score(output, question_type, answer, options, match)   answer extraction, accuracy / MRA / rules
  official.aggregate(bench, records) -> dict                      each benchmark's own aggregate
  harness.evaluate(model, processor, questions, ...) -> dict      batched generation, per-type accuracy, timings
  report.write(results, out_dir, name)                            <name>.json + <name>.md
  predictions.write(path, records) / read(path)                   {"id", "output"} per line

    python -m vlatent_jax.eval --ckpt C --bench NAME --data PATH [--limit N] [--mode M] [--out DIR]
    python -m vlatent_jax.eval.score --bench NAME --data PATH --predictions P.jsonl

Nothing here imports jax at module level: decode workers import `harness` for their task function.
"""
