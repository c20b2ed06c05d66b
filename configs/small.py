"""Small config: the headline experiment's `--preset gpu` model, configs/tiny.py twice as wide and deep.

    python -m vlatent_jax.experiment --workdir W --preset gpu

Positions, optimizer, data and checkpoint settings as in configs/tiny.py (small rope_theta, one temporal
position per slice); only the widths and depths change, and with them initializer_range, kept at about
1 / sqrt(width) as in tiny.py (not validated at this size: no accelerator in the sessions so far).
"""

import os

import ml_collections

from vlatent_jax.config import load_config_file


def get_config() -> ml_collections.ConfigDict:
  c = load_config_file(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny.py"))
  c.model.vision.update(depth=4, hidden_size=128, intermediate_size=256, out_hidden_size=256,
                        fullatt_block_indexes=(1, 3), initializer_range=0.09)
  c.model.llm.update(hidden_size=256, intermediate_size=768, num_hidden_layers=4, mrope_section=(8, 12, 12),
                     initializer_range=0.06)
  c.latent.num_heads = 8
  return c
