"""Data loading and preprocessing for vlatent_jax."""
