"""Qwen2.5-VL-7B VideoLatent training from converted Hugging Face weights: configs/qwen2_5_vl_3b.py with a
lower learning rate and parameters sharded over 16 devices.

    python -m vlatent_jax.convert hf-to-jax --hf-dir Qwen2.5-VL-7B-Instruct --out ckpt/qwen2_5_vl_7b
    python -m vlatent_jax.train --config configs/qwen2_5_vl_7b.py --workdir runs/7b \\
        --config.model.init_from=ckpt/qwen2_5_vl_7b --config.data.path=data/train --config.data.val_path=data/val
"""

import os

import ml_collections

from vlatent_jax.config import load_config_file


def get_config() -> ml_collections.ConfigDict:
  c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "qwen2_5_vl_3b.py"))
  c.optim.learning_rate = 5e-6
  c.mesh.fsdp = 16
  return c
