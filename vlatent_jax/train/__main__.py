"""Training CLI: `python -m vlatent_jax.train --config configs/X.py --workdir W [--config.key=value ...]`.

With no `data.path` the embedded benchmark is generated and prepared under `W/data` (process 0 writes,
the others wait) and the run trains on its train / val shards.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from vlatent_jax.config import ConfigError, parse

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file (configs/*.py)",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "run directory: checkpoints, metrics, TensorBoard, data")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  try:
    config = parse(_CONFIG.value)  # every key checked before any compute
  except ConfigError as e:
    raise app.UsageError(str(e)) from None
  from vlatent_jax.distributed import initialize_from_env
  initialize_from_env()
  from vlatent_jax.train.embedded_data import with_embedded_data
  from vlatent_jax.train.loop import NonFiniteLoss, train
  try:
    train(with_embedded_data(config, _WORKDIR.value), _WORKDIR.value)
  except ConfigError as e:
    raise app.UsageError(str(e)) from None
  except NonFiniteLoss as e:
    sys.exit(f"[train] stopped: {e}")


if __name__ == "__main__":
  app.run(main)
