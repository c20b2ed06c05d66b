"""Read and write Hugging Face Qwen2.5-VL safetensors checkpoints as our parameter tree.

Reading streams one tensor at a time (safetensors `framework="np"`, so no
torch) and checks every key and shape against the shapes our model expects
for the config, so a bad checkpoint fails naming the key and file before a
model is built. Writing plans shards from shapes alone and materialises one
shard at a time, so peak memory is the model plus one shard. Transforms are
exact transposes/reshapes: HF -> ours -> HF is bit-identical in any dtype.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save_file

from vlatent_jax.convert import keys
from vlatent_jax.convert.hf_config import config_from_hf, config_to_hf
from vlatent_jax.models.config import ConfigError, ModelConfig
from vlatent_jax.models.vlm import VideoLM

log = logging.getLogger(__name__)

SINGLE_FILE = "model.safetensors"
LATENT_FILE = "latent_injection.safetensors"  # the LIM: our parameter layout, keys like 'latent.q_proj.kernel'
LATENT_PREFIX = "latent/"
INDEX_FILE = "model.safetensors.index.json"
LM_HEAD = "lm_head.weight"
# Tokenizer / processor / generation files carried along unchanged.
AUX_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json",
             "added_tokens.json", "chat_template.json", "chat_template.jinja", "preprocessor_config.json",
             "video_preprocessor_config.json", "processor_config.json", "generation_config.json")


class CheckpointError(ValueError):
  """A checkpoint file is unreadable or does not match the model its config describes; the message names
  the file (and the key)."""


# --- reading files: every error names the file and says what is wrong with it ---

_MAX_HEADER = 100 * 1024**2  # safetensors refuses larger headers too


def _diagnose(path: Path) -> str:
  """What is wrong with a file safetensors refused to open, from its size and header."""
  size = path.stat().st_size
  if size == 0:
    return "is empty"
  with open(path, "rb") as f:
    prefix = f.read(8)
    n = int.from_bytes(prefix, "little")
    if len(prefix) < 8 or n > _MAX_HEADER:
      return "is not a safetensors file"
    raw = f.read(n)
  if len(raw) < n:
    return f"is truncated ({size} bytes, inside its {8 + n}-byte header)"
  try:
    header = json.loads(raw)
  except ValueError:  # JSONDecodeError, UnicodeDecodeError
    return "is not a safetensors file (its header is not JSON)"
  if not isinstance(header, dict):
    return "is not a safetensors file (its header is not a JSON object)"
  offsets = [v.get("data_offsets") for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)]
  data = max((o[1] for o in offsets if isinstance(o, list) and len(o) == 2 and isinstance(o[1], int)), default=0)
  if size < 8 + n + data:
    return f"is truncated ({size} of {8 + n + data} bytes)"
  return "is not a valid safetensors file"


@contextlib.contextmanager
def open_safetensors(path) -> Iterator[Any]:
  """`safe_open(path, framework="np")` whose open errors name the file and say what is wrong."""
  path = Path(path)
  try:
    f = safe_open(path, framework="np")
  except SafetensorError as e:  # its messages do not name the file
    raise CheckpointError(f"'{path}' {_diagnose(path)}: {e}") from e
  except OSError as e:  # e.g. a directory or no permission: safetensors' message omits the path
    raise type(e)(f"cannot open '{path}': {e}") from e
  with f:
    yield f


def read_json(path: Path, what: str) -> dict:
  """A JSON object from `path`; errors name the file."""
  try:
    data = json.loads(path.read_text())
  except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
    raise CheckpointError(f"{what} '{path}' is not valid JSON: {e}") from e
  if not isinstance(data, dict):
    raise CheckpointError(f"{what} '{path}' must hold a JSON object, got {type(data).__name__}")
  return data


# --- parameter trees: nested pure dicts (int keys for list indices) <-> slash paths ---

def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    path = f"{prefix}{k}"
    out.update(flatten(v, path + "/") if isinstance(v, dict) else {path: v})
  return out


def unflatten(flat: dict[str, Any]) -> dict:
  tree: dict = {}
  for path, value in flat.items():
    parts = [int(p) if p.isdigit() else p for p in path.split("/")]
    node = tree
    for p in parts[:-1]:
      node = node.setdefault(p, {})
    node[parts[-1]] = value
  return tree


def expected_params(config: ModelConfig) -> dict[str, tuple]:
  """Our path -> (canonical HF key, kind, HF shape, our shape), from the model itself (no allocation)."""
  abstract = nnx.eval_shape(lambda: VideoLM(config, rngs=nnx.Rngs(0)))
  shapes = flatten(nnx.to_pure_dict(nnx.state(abstract, nnx.Param)))
  v = config.vision
  out = {}
  for path, leaf in shapes.items():
    if path.startswith(LATENT_PREFIX):
      continue  # no HF counterpart: stored in LATENT_FILE, see latent_shapes
    hf_key, kind = keys.ours_to_hf(path)
    shape = ours = tuple(leaf.shape)
    if kind == "linear":
      shape = shape[::-1]
    elif kind == "conv3d":
      shape = (shape[1], v.in_channels, v.temporal_patch_size, v.patch_size, v.patch_size)
    out[path] = (hf_key, kind, shape, ours)
  return out


def latent_shapes(config: ModelConfig) -> dict[str, tuple]:
  """Our latent-module paths -> shapes (empty without a latent module)."""
  if config.latent is None:
    return {}
  abstract = nnx.eval_shape(lambda: VideoLM(config, rngs=nnx.Rngs(0)))
  shapes = flatten(nnx.to_pure_dict(nnx.state(abstract, nnx.Param)))
  return {p: tuple(leaf.shape) for p, leaf in shapes.items() if p.startswith(LATENT_PREFIX)}


def _read_latent(hf_dir: Path, config: ModelConfig, cast) -> dict[str, np.ndarray]:
  expected = latent_shapes(config)
  if not expected:
    return {}
  path = hf_dir / LATENT_FILE
  if not path.is_file():
    raise FileNotFoundError(f"config.json describes a latent injection module but '{path}' is missing")
  out = {}
  with open_safetensors(path) as f:
    for key in f.keys():
      ours = key.replace(".", "/")
      if ours not in expected:
        raise CheckpointError(f"unknown parameter '{key}' in '{path}'")
      array = f.get_tensor(key)
      if tuple(array.shape) != expected[ours]:
        raise CheckpointError(f"parameter '{key}' in '{path}' has shape {list(array.shape)}, "
                              f"expected {list(expected[ours])}")
      out[ours] = array if cast is None or array.dtype == cast else array.astype(cast)
  missing = sorted(set(expected) - set(out))
  if missing:
    raise CheckpointError(f"'{path}' is missing {missing[:5]}")
  return out


def _np_dtype(dtype):
  return None if dtype is None else np.dtype(jnp.dtype(dtype))


# --- reading ---

def _tensor_files(hf_dir: Path) -> dict[str, list[str]]:
  """File name -> the keys to read from it (index order for sharded checkpoints)."""
  index = hf_dir / INDEX_FILE
  if index.is_file():
    weight_map = read_json(index, "index").get("weight_map")
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
      raise CheckpointError(f"index '{index}' has no \"weight_map\" object of tensor name -> file name")
    files: dict[str, list[str]] = {}
    for key, name in weight_map.items():
      files.setdefault(name, []).append(key)
    for name in files:
      if not (hf_dir / name).is_file():
        raise FileNotFoundError(f"index '{index}' lists shard '{name}', which does not exist")
    return files
  if (hf_dir / SINGLE_FILE).is_file():
    with open_safetensors(hf_dir / SINGLE_FILE) as f:
      return {SINGLE_FILE: list(f.keys())}
  raise FileNotFoundError(f"'{hf_dir}' has no {SINGLE_FILE} or {INDEX_FILE}")


def read_hf(hf_dir, dtype=None) -> tuple[ModelConfig, dict, dict[str, Any]]:
  """Reads a HF Qwen2.5-VL directory -> (config, nested numpy params, meta); `dtype` casts if given."""
  hf_dir = Path(hf_dir)
  if not (hf_dir / "config.json").is_file():
    what = "has no config.json" if hf_dir.is_dir() else "does not exist"
    raise FileNotFoundError(f"Hugging Face checkpoint directory '{hf_dir}' {what}")
  hf_config = read_json(hf_dir / "config.json", "config")
  try:
    config = config_from_hf(hf_config)
  except ConfigError as e:
    raise ConfigError(f"'{hf_dir / 'config.json'}': {e}") from e
  expected = expected_params(config)
  by_hf_key = {v[0]: path for path, v in expected.items()}
  cast = _np_dtype(dtype)
  flat: dict[str, np.ndarray] = {}
  layouts: set[str] = set()
  tied_head = None
  for name, file_keys in _tensor_files(hf_dir).items():
    with open_safetensors(hf_dir / name) as f:
      present = set(f.keys())
      for key in file_keys:
        if key not in present:
          raise CheckpointError(f"index '{hf_dir / INDEX_FILE}' maps '{key}' to '{hf_dir / name}', "
                                f"which has no such tensor")
        canonical, layout = keys.canonical_hf_key(key)
        if canonical == LM_HEAD and config.llm.tie_word_embeddings:
          tied_head = f.get_tensor(key)  # resolved below, once embed_tokens is known
          continue
        path = by_hf_key.get(canonical)
        if path is None:
          raise CheckpointError(f"unknown parameter '{key}' in '{hf_dir / name}' (not part of Qwen2.5-VL "
                                f"with this config.json)")
        if path in flat:
          raise CheckpointError(f"parameter '{key}' in '{hf_dir / name}' appears twice (both key layouts?)")
        _, kind, shape, _ = expected[path]
        actual = tuple(f.get_slice(key).get_shape())
        if actual != shape:
          raise CheckpointError(f"parameter '{key}' in '{hf_dir / name}' has shape {list(actual)}, "
                                f"expected {list(shape)} from config.json")
        if canonical != LM_HEAD:
          layouts.add(layout)
        array = keys.to_ours(kind, f.get_tensor(key))
        flat[path] = array if cast is None or array.dtype == cast else array.astype(cast)
  if len(layouts) > 1:
    raise CheckpointError(f"'{hf_dir}' mixes key layouts {sorted(layouts)} (visual.* vs model.visual.*)")
  meta: dict[str, Any] = {"hf_config": hf_config, "hf_layout": layouts.pop() if layouts else "canonical",
                          "source_dir": str(hf_dir.resolve()),
                          "files": [n for n in AUX_FILES if (hf_dir / n).is_file()]}
  if tied_head is not None:
    embed = flat.get("llm/embed_tokens/embedding")
    vocab_shape = (config.llm.vocab_size, config.llm.hidden_size)
    if tied_head.shape != vocab_shape:
      raise CheckpointError(f"parameter '{LM_HEAD}' has shape {list(tied_head.shape)}, "
                            f"expected {list(vocab_shape)} from config.json")
    head = tied_head if cast is None else tied_head.astype(cast)  # embed is already cast
    if embed is not None and head.dtype == embed.dtype and head.tobytes() == embed.tobytes():
      meta["tied_lm_head_saved"] = True  # redundant copy; re-emitted on write
    else:  # like transformers: a distinct lm_head in the file unties the embeddings
      log.warning("%s: lm_head.weight differs from embed_tokens; untying (tie_word_embeddings=false)", hf_dir)
      config = ModelConfig.from_dict({**config.to_dict(), "llm": {**config.to_dict()["llm"],
                                                                   "tie_word_embeddings": False}})
      expected = expected_params(config)
      flat["llm/lm_head/kernel"] = keys.to_ours("linear", head)
  flat.update(_read_latent(hf_dir, config, cast))
  missing = sorted(expected[p][0] for p in expected if p not in flat)
  if missing:
    shown = ", ".join(keys.layout_key(k, meta["hf_layout"]) for k in missing[:5])
    raise CheckpointError(f"'{hf_dir}' is missing {len(missing)} parameter(s): {shown}"
                          + (" ..." if len(missing) > 5 else ""))
  return config, unflatten(flat), meta


# --- writing ---

@contextlib.contextmanager
def atomic_output_dir(out_dir, overwrite: bool = False) -> Iterator[Path]:
  """Yields a temporary sibling directory that becomes `out_dir` only if the block succeeds."""
  out = Path(out_dir).absolute()
  if out.exists() and not overwrite:
    raise FileExistsError(f"output '{out}' already exists (remove it, or pass --overwrite / overwrite=True)")
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it 0700; the result should look like a plain mkdir
  try:
    yield tmp
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  if out.exists():  # overwrite: move the old one aside first so a crash never leaves neither
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    os.rename(out, old / "x")
    os.rename(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
  else:
    os.rename(tmp, out)


def copy_aux_files(src_dir, out_dir: Path) -> list[str]:
  """Copies the tokenizer / processor / generation files present in `src_dir` (if any)."""
  copied = []
  src = Path(src_dir) if src_dir else None
  if src is not None and src.is_dir():
    for name in AUX_FILES:
      if (src / name).is_file():
        shutil.copyfile(src / name, out_dir / name)
        copied.append(name)
  return copied


def _dtype_name(flat: dict[str, Any]) -> str | None:
  names = {np.dtype(a.dtype).name for a in flat.values()}
  return names.pop() if len(names) == 1 else None


_ST_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
              "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def _write_safetensors(path: Path, tensors: list[tuple[str, tuple, Any, str]]) -> None:
  """Writes one safetensors file tensor by tensor: (key, HF shape, our array, kind) in order.

  The header only needs shapes and dtypes, so each tensor is transformed and
  written on its own; peak extra memory is one tensor, not one shard.
  """
  header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
  offset = 0
  for key, shape, array, _ in tensors:
    nbytes = int(np.prod(shape)) * np.dtype(array.dtype).itemsize
    header[key] = {"dtype": _ST_DTYPES[np.dtype(array.dtype).name], "shape": list(shape),
                   "data_offsets": [offset, offset + nbytes]}
    offset += nbytes
  blob = json.dumps(header, separators=(",", ":")).encode()
  blob += b" " * (-len(blob) % 8)  # data starts 8-byte aligned, as safetensors writes it
  with open(path, "wb") as f:
    f.write(len(blob).to_bytes(8, "little") + blob)
    for key, shape, array, kind in tensors:
      data = np.ascontiguousarray(keys.to_hf(kind, np.asarray(array), shape))
      f.write(data.reshape(-1).view(np.uint8).data)


def write_hf(config: ModelConfig, params: dict, out_dir, meta: dict | None = None,
             max_shard_bytes: int = 2 * 1024**3, overwrite: bool = False) -> dict[str, Any]:
  """Writes a HF directory (safetensors shards, index, config.json, aux files); returns a summary."""
  meta = meta or {}
  layout = meta.get("hf_layout", "canonical")
  expected = expected_params(config)
  flat = flatten(params)
  latent = {p: flat.pop(p) for p in list(flat) if p.startswith(LATENT_PREFIX)}
  if set(latent) != set(latent_shapes(config)):
    raise CheckpointError(f"latent parameters {sorted(latent)[:5]} do not match the config's latent module")
  unknown = sorted(set(flat) - set(expected))
  missing = sorted(set(expected) - set(flat))
  if unknown or missing:
    raise CheckpointError(f"params do not match the config: unknown {unknown[:5]}, missing {missing[:5]}")
  entries = []  # (HF key in the output layout, our path, kind, HF shape, nbytes)
  for path, (hf_key, kind, shape, ours) in expected.items():
    if tuple(flat[path].shape) != ours:
      raise CheckpointError(f"param '{path}' has shape {list(flat[path].shape)}, expected {list(ours)}")
    entries.append((keys.layout_key(hf_key, layout), path, kind, shape, flat[path].nbytes))
  embed = "llm/embed_tokens/embedding"
  if meta.get("tied_lm_head_saved") and config.llm.tie_word_embeddings:
    entries.append((LM_HEAD, embed, "copy", expected[embed][2], flat[embed].nbytes))
  entries.sort()

  shards: list[list] = [[]]
  size = 0
  for entry in entries:
    if shards[-1] and size + entry[4] > max_shard_bytes:
      shards.append([])
      size = 0
    shards[-1].append(entry)
    size += entry[4]
  n = len(shards)
  names = [SINGLE_FILE] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]

  with atomic_output_dir(out_dir, overwrite) as tmp:
    weight_map = {}
    for name, shard in zip(names, shards):
      _write_safetensors(tmp / name, [(key, shape, flat[path], kind) for key, path, kind, shape, _ in shard])
      weight_map.update({entry[0]: name for entry in shard})
    total = sum(e[4] for e in entries)
    if n > 1:
      index = {"metadata": {"total_size": total, "total_parameters": sum(int(np.prod(e[3])) for e in entries)},
               "weight_map": dict(sorted(weight_map.items()))}
      (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    if latent:
      save_file({p.replace("/", "."): np.ascontiguousarray(a) for p, a in latent.items()}, tmp / LATENT_FILE,
                metadata={"format": "np"})
      names.append(LATENT_FILE)
    copied = copy_aux_files(meta.get("source_dir"), tmp)
    hf_config = config_to_hf(config, meta.get("hf_config"), dtype=_dtype_name(flat))
    (tmp / "config.json").write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
  return {"tensors": len(entries), "bytes": total, "shards": n, "files": names + copied}
