"""vlatent_jax: video latent reasoning (VideoLatent) in JAX/Flax.

`load` and `Model` are imported on first use, so data-preparation worker
processes that import `vlatent_jax.data` do not pay for importing jax.
"""

__all__ = ["Model", "load"]


def __getattr__(name):
  if name in __all__:
    from vlatent_jax import inference
    return getattr(inference, name)
  raise AttributeError(f"module 'vlatent_jax' has no attribute {name!r}")
