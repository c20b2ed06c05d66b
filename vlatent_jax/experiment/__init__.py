"""The headline experiment (`python -m vlatent_jax.experiment`): see `__main__.py`."""

from vlatent_jax.experiment.report import markdown, summarize  # noqa: F401
