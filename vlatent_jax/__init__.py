"""vlatent_jax: video latent reasoning (VideoLatent) in JAX/Flax."""

from vlatent_jax.inference import Model, load

__all__ = ["Model", "load"]
