"""Evaluation: benchmark readers, Video-R1-style scoring, the batched harness and result reports.

  readers.read(bench, path, limit=None) -> (questions, errors)   released benchmark files -> Question
  scoring.score(output, question_type, answer, options)          answer extraction, accuracy / MRA
  harness.evaluate(model, processor, questions, ...) -> dict      batched generation, per-type accuracy, timings
  report.write(results, out_dir, name)                            <name>.json + <name>.md

    python -m vlatent_jax.eval --ckpt C --bench NAME --data PATH [--limit N] [--mode M] [--out DIR]

Nothing here imports jax at module level: decode workers import `harness` for their task function.
"""
