"""The vlatent_jax model checkpoint: a directory loadable without Hugging Face.

Layout:
  vlatent_config.json  {"format": "vlatent_jax", "version": 1, "model": ModelConfig.to_dict(), "meta": {...}}
  params/              orbax-checkpoint PyTree of the `nnx.Param` pure dict (list indices as "0", "1", ...)
  tokenizer / processor / generation files copied from the source, so `jax-to-hf` can restore them.

`meta` keeps what is needed to write the original HF checkpoint back
(`hf_config`, `hf_layout`). The whole directory is built in a temporary
sibling and renamed into place, so a crash never leaves a half-written
checkpoint under the target name. Orbax stores arrays in their own dtype, so
bf16 stays bf16 bit for bit; loading returns host numpy arrays.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from vlatent_jax.convert.hf import CheckpointError, atomic_output_dir, copy_aux_files, read_hf, read_json
from vlatent_jax.models.config import ModelConfig
from vlatent_jax.models.stacking import unstack_layers

FORMAT = "vlatent_jax"
VERSION = 1
CONFIG_NAME = "vlatent_config.json"
PARAMS_DIR = "params"
_TRANSIENT_META = ("source_dir",)  # per-process paths, not stored


def _str_keys(tree):
  return {str(k): _str_keys(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def _int_keys(tree):
  if not isinstance(tree, dict):
    return tree
  return {(int(k) if isinstance(k, str) and k.isdigit() else k): _int_keys(v) for k, v in tree.items()}


def is_checkpoint(path) -> bool:
  path = Path(path)
  return (path / CONFIG_NAME).is_file() and (path / PARAMS_DIR).is_dir()


def _quiet_ocdbt_notice(record: logging.LogRecord) -> bool:
  """Drops orbax's per-save warning that there are no OCDBT files to merge (we don't use OCDBT)."""
  return "Skipping merge of OCDBT" not in record.getMessage()


def _checkpointer() -> ocp.AsyncCheckpointer:
  """Orbax PyTree checkpointer tuned for host memory: a 7B model must save within 24 GiB.

  Orbax's defaults deep-copy every numpy leaf before an async save and buffer
  the OCDBT store, ~2.5x the model at peak. We wait for the save before
  returning, so the copy is unnecessary; one zarr array per parameter
  (no OCDBT) streams array by array.
  """
  registry = ocp.type_handlers.create_type_handler_registry(
      (np.ndarray, ocp.type_handlers.NumpyHandler(deepcopy_host_arrays=False)),
      (jax.Array, ocp.type_handlers.get_type_handler(jax.Array)))
  return ocp.AsyncCheckpointer(ocp.PyTreeCheckpointHandler(type_handler_registry=registry, use_ocdbt=False))


def save_checkpoint(path, config: ModelConfig, params: dict, meta: dict | None = None, *,
                    tokenizer_dir=None, overwrite: bool = False, extra_files: dict[str, dict] | None = None) -> Path:
  """Writes a checkpoint directory atomically; an existing `path` is an error unless `overwrite`.

  Tokenizer / processor files are copied from `tokenizer_dir`, else from meta["source_dir"];
  `extra_files` ({file name: JSON object}) are written after them, inside the same atomic write.
  """
  params = unstack_layers(params)  # one on-disk layout, however the model was built (models/stacking.py)
  meta = dict(meta or {})
  stored_meta = {k: v for k, v in meta.items() if k not in _TRANSIENT_META}
  header = {"format": FORMAT, "version": VERSION, "model": config.to_dict(), "meta": stored_meta}
  text = json.dumps(header, indent=2)  # fails early on non-JSON meta
  for keypath, leaf in jax.tree_util.tree_leaves_with_path(params):
    if not isinstance(leaf, (np.ndarray, jax.Array)):
      raise TypeError(f"param '{jax.tree_util.keystr(keypath)}' is a {type(leaf).__name__}, not an array")
  with atomic_output_dir(path, overwrite) as tmp:
    checkpointer = _checkpointer()
    absl_log = logging.getLogger("absl")
    absl_log.addFilter(_quiet_ocdbt_notice)
    try:
      checkpointer.save(tmp / PARAMS_DIR, args=ocp.args.PyTreeSave(_str_keys(params)))
      checkpointer.wait_until_finished()  # async save: surface its errors here
    finally:
      checkpointer.close()
      absl_log.removeFilter(_quiet_ocdbt_notice)
    copy_aux_files(tokenizer_dir or meta.get("source_dir"), tmp)
    for name, content in (extra_files or {}).items():
      (tmp / name).write_text(json.dumps(content, indent=2) + "\n")
    (tmp / CONFIG_NAME).write_text(text + "\n")
  return Path(path).absolute()


def _read_header(path: Path) -> dict[str, Any]:
  if not is_checkpoint(path):
    raise FileNotFoundError(f"'{path}' is not a vlatent_jax checkpoint (expected {CONFIG_NAME} and {PARAMS_DIR}/)")
  header = read_json(path / CONFIG_NAME, "checkpoint config")
  if header.get("format") != FORMAT or header.get("version") != VERSION:
    raise ValueError(f"'{path / CONFIG_NAME}': unsupported format {header.get('format')!r} "
                     f"version {header.get('version')!r} (expected {FORMAT!r} version {VERSION})")
  return header


def load_checkpoint(path, dtype=None) -> tuple[ModelConfig, dict, dict[str, Any]]:
  """-> (config, nested numpy params with int list keys, meta); `dtype` casts on restore."""
  path = Path(path).absolute()
  header = _read_header(path)
  config = ModelConfig.from_dict(header["model"])
  params_dir = path / PARAMS_DIR
  # The handler, not Checkpointer.metadata: that one logs why the metadata is unreadable and returns None.
  handler = ocp.PyTreeCheckpointHandler()
  checkpointer = ocp.PyTreeCheckpointer()
  try:
    tree = handler.metadata(params_dir).tree
    cast = None if dtype is None else np.dtype(jax.numpy.dtype(dtype))
    restore_args = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray, dtype=cast), tree)
    params = checkpointer.restore(params_dir, args=ocp.args.PyTreeRestore(restore_args=restore_args))
  except (OSError, ValueError) as e:  # orbax: FileNotFoundError, JSONDecodeError; tensorstore: ValueError
    reason = str(e).split(" [tensorstore_spec=")[0]  # drop tensorstore's kilobyte-long spec dump
    raise CheckpointError(f"checkpoint '{path}': cannot read the parameters in '{params_dir}' "
                          f"(damaged or incomplete?): {reason}") from e
  finally:
    handler.close()
    checkpointer.close()
  meta = dict(header.get("meta") or {})
  meta["source_dir"] = str(path)  # aux files live next to the params
  return config, _int_keys(params), meta


def load_params(path, dtype=None) -> tuple[ModelConfig, dict, dict[str, Any]]:
  """Loads either a Hugging Face Qwen2.5-VL directory or a vlatent_jax checkpoint."""
  path = Path(path)
  if is_checkpoint(path):
    return load_checkpoint(path, dtype)
  if (path / "config.json").is_file():
    return read_hf(path, dtype)
  if not path.exists():
    raise FileNotFoundError(f"checkpoint path '{path}' does not exist")
  raise ValueError(f"'{path}' is neither a Hugging Face checkpoint (config.json + *.safetensors) "
                   f"nor a vlatent_jax checkpoint ({CONFIG_NAME} + {PARAMS_DIR}/)")
