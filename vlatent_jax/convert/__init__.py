"""Checkpoint conversion between Hugging Face Qwen2.5-VL and vlatent_jax.

keys.py: parameter key table; hf_config.py: config.json <-> ModelConfig;
hf.py: safetensors read/write; __main__.py: the `python -m vlatent_jax.convert` CLI.
"""
