"""Device mesh, logical axis rules, and sharding by logical name for weights and activations alike.

Mesh axes: data (pure data parallel), fsdp (data parallel with parameters split), tensor (model parallel).

Logical axis vocabulary (one for parameters, activations and batches; default mesh axes):
  batch     examples of a batch; in the vision tower, temporal slices   -> ("data", "fsdp")
  length    sequence positions, patches of a slice                      -> replicated
  embed     model width D                                               -> "fsdp"
  mlp       MLP hidden width F (merger and LIM D->D maps too)           -> "tensor"
  heads     query heads x head dim (N*H; vision fused qkv)              -> "tensor"
  kv_heads  key/value heads x head dim (K*H)                            -> "tensor"
  vocab     vocabulary                                                  -> "tensor"
  norm, patch, any other name, None                                     -> replicated

A name takes the mesh axes of its first rule that the dimension's size divides, less any mesh axis an
earlier dimension of the same array already took: activations ("batch", "length", "embed") put the
batch on data+fsdp and keep D whole, weights ("embed", "mlp") split D over fsdp and F over tensor. A
dimension no rule divides is replicated (logged), so odd tiny models still shard.

Parameter mapping and compute mapping are kept apart: parameters are stored by PARAM_AXES (D split over
fsdp) and gathered over the batch's mesh axes for compute (`gather_params`, the FSDP all-gather);
batches follow BATCH_AXES and activations `constrain` calls inside the model.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from vlatent_jax.errors import ConfigError

logger = logging.getLogger(__name__)
DEBUG = False  # log every spec `constrain` applies (set vlatent_jax.sharding.DEBUG = True)


def path_string(path) -> str:
  """A pytree key path as our slash path, e.g. 'llm/layers/0/mlp/up_proj/kernel'."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


MESH_AXES = ("data", "fsdp", "tensor")

# (logical name, mesh axes) in priority order; a name may appear more than once (fallbacks).
DEFAULT_RULES = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("vocab", "tensor"),
)

# Parameter path (a suffix of our slash path, Flax's trailing '/value' dropped) -> logical axes per dim.
# First match wins. The same rows shard the optimizer state, whose paths end in the parameter's.
PARAM_AXES = (
    (r"llm/embed_tokens/embedding", ("vocab", "embed")),
    (r"llm/lm_head/kernel", ("embed", "vocab")),
    (r"self_attn/(k_proj|v_proj)/kernel", ("embed", "kv_heads")),
    (r"self_attn/(k_proj|v_proj)/bias", ("kv_heads",)),
    (r"(q_proj|k_proj|v_proj|qkv)/kernel", ("embed", "heads")),  # decoder q, LIM q/k/v, vision fused qkv
    (r"(q_proj|k_proj|v_proj|qkv)/bias", ("heads",)),
    (r"(o_proj|attn/proj)/kernel", ("heads", "embed")),
    (r"(gate_proj|up_proj|merger/mlp_in)/kernel", ("embed", "mlp")),
    (r"(gate_proj|up_proj|merger/mlp_in)/bias", ("mlp",)),
    (r"(down_proj|merger/mlp_out)/kernel", ("mlp", "embed")),
    (r"(down_proj|merger/mlp_out|attn/proj)/bias", ("embed",)),
    (r"vision/patch_embed/proj/kernel", ("patch", "embed")),
    (r"latent/(out_proj|align_proj)/kernel", ("embed", "mlp")),
    (r"latent/(out_proj|align_proj)/bias", ("mlp",)),
    (r"latent/gate", (None,)),
    (r"weight", ("norm",)),  # RMSNorm scales
)

# Layer containers that `model.scan_layers` stacks: a parameter directly under one (no layer index in its
# path) carries a leading [L] axis, named "layers" (no rule: replicated; FSDP splits each layer's D).
STACKED_LAYERS = r"(?:.*/)?(?:llm/layers|vision/blocks)/(?!\d+/)"

# Batch key -> logical axes of its leading dims (the rest replicated).
BATCH_AXES = (
    (r"position_ids", (None, "batch")),               # [3, B, T]
    (r"[^/]+", ("batch",)),                           # every other key is [B, ...]
)


def make_mesh(mesh_config, devices=None) -> jax.sharding.Mesh:
  """MeshConfig (data, fsdp, tensor; one may be -1) -> Mesh over `devices` (default: all)."""
  devices = list(jax.devices() if devices is None else devices)
  sizes = [mesh_config.data, mesh_config.fsdp, mesh_config.tensor]
  described = " * ".join(f"mesh.{a}={s}" for a, s in zip(MESH_AXES, sizes))
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes and len(devices) % known == 0:
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ConfigError(f"config key 'mesh.{MESH_AXES[sizes.index(-1)] if -1 in sizes else 'data'}': "
                      f"{described} does not match the {len(devices)} devices")
  kwargs = {}
  if hasattr(jax.sharding, "AxisType"):  # newer jax defaults to Explicit axes; we want GSPMD propagation
    kwargs["axis_types"] = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
  return jax.make_mesh(tuple(sizes), MESH_AXES, devices=devices, **kwargs)


def mesh_context(mesh):
  """Context making `mesh` current while tracing inside jit (`jax.set_mesh` only works outside)."""
  return jax.sharding.use_abstract_mesh(mesh.abstract_mesh) if mesh is not None else contextlib.nullcontext()


def _as_tuple(axes) -> tuple:
  return (axes,) if isinstance(axes, str) else tuple(axes or ())


def logical_to_spec(names, shape, mesh_shape, rules=DEFAULT_RULES, where: str = "") -> PartitionSpec:
  """Logical names (one per leading dim; missing ones replicated) -> PartitionSpec for an array of `shape`."""
  names = tuple(names)[:len(shape)] + (None,) * max(0, len(shape) - len(names))
  used, spec = set(), []
  for dim, name in zip(shape, names):
    chosen = ()
    for rule_name, axes in rules:
      if name is None or rule_name != name:
        continue
      axes = tuple(a for a in _as_tuple(axes) if a in mesh_shape and a not in used)
      size = math.prod(mesh_shape[a] for a in axes)
      if dim % size == 0:
        chosen = axes
        break
      logger.info("sharding %s: dim %r of size %d is not divisible by mesh axes %s (%d): next rule or replicated",
                  where or "array", name, dim, axes, size)
    used.update(chosen)
    spec.append(None if not chosen else chosen[0] if len(chosen) == 1 else chosen)
  return PartitionSpec(*spec)


def logical_to_sharding(names, mesh, rules=DEFAULT_RULES, shape=None) -> NamedSharding:
  """Logical names -> NamedSharding on `mesh` (divisibility checked only when `shape` is given)."""
  shape = shape if shape is not None else (0,) * len(names)  # 0 is divisible by every axis size
  return NamedSharding(mesh, logical_to_spec(names, shape, mesh.shape, rules))


def logical_axes(path: str, table=PARAM_AXES) -> tuple:
  """The logical axes of the first table row whose pattern matches a suffix of `path`."""
  path = path.removesuffix("/value")
  layers = ("layers",) if table is PARAM_AXES and re.match(STACKED_LAYERS, path) else ()
  for pattern, names in table:
    if re.fullmatch(rf"(?:.*/)?(?:{pattern})", path):
      return layers + names
  raise ValueError(f"no sharding rule matches parameter '{path}': add a row to vlatent_jax.sharding.PARAM_AXES")


def tree_shardings(tree, mesh, rules=DEFAULT_RULES, table=PARAM_AXES):
  """Pytree of arrays / ShapeDtypeStructs -> matching pytree of NamedSharding (scalars replicated)."""
  def one(path, leaf):
    name = path_string(path)
    names = logical_axes(name, table) if len(leaf.shape) else ()
    return NamedSharding(mesh, logical_to_spec(names, leaf.shape, mesh.shape, rules, where=name))
  return jax.tree_util.tree_map_with_path(one, tree)


def param_shardings(abstract_params, mesh, rules=DEFAULT_RULES):
  """Parameters (or anything whose paths end in parameter paths: optimizer state) -> NamedShardings."""
  return tree_shardings(abstract_params, mesh, rules, PARAM_AXES)


def batch_shardings(batch, mesh, rules=DEFAULT_RULES):
  """Batch dims over ("data", "fsdp") by BATCH_AXES."""
  return tree_shardings(batch, mesh, rules, BATCH_AXES)


def replicated(mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def shard_batch(batch, mesh, rules=DEFAULT_RULES):
  """Host (numpy) batch -> global arrays. Each process passes its own examples; the global batch is
  their concatenation along the batch dims (single-process: the batch itself); every key, videos included
  (per-example layout), leads with the batch dim, and all processes must pass the same shapes
  (`train.batch.pad_batch`)."""
  batch = jax.tree.map(np.asarray, batch)
  processes = jax.process_count()

  def global_shape(path, x):
    names = logical_axes(path_string(path), BATCH_AXES)
    return tuple(n * processes if name == "batch" else n for n, name in zip(x.shape, names + (None,) * x.ndim))

  shapes = jax.tree_util.tree_map_with_path(global_shape, batch)
  abstract = jax.tree.map(lambda x, shape: jax.ShapeDtypeStruct(shape, x.dtype), batch, shapes)
  shardings = batch_shardings(abstract, mesh, rules)
  if processes > 1:
    for (path, sharding), shape in zip(jax.tree_util.tree_leaves_with_path(shardings), jax.tree.leaves(
        shapes, is_leaf=lambda x: isinstance(x, tuple))):
      if sharding.is_fully_replicated:
        raise ValueError(f"batch key {path_string(path)!r} of global shape {shape} does not split over the "
                         f"batch mesh axes {dict(mesh.shape)}: make train.batch_size divisible by them")
  return jax.tree.map(jax.make_array_from_process_local_data, shardings, batch, shapes,
                      is_leaf=lambda x: isinstance(x, tuple) and all(isinstance(n, int) for n in x))


def compute_rules(rules=DEFAULT_RULES) -> tuple:
  """Rules for weights in use: the batch's mesh axes dropped (FSDP gathers them), tensor axes kept."""
  batch_axes = {a for name, axes in rules if name == "batch" for a in _as_tuple(axes)}
  return tuple((name, tuple(a for a in _as_tuple(axes) if a not in batch_axes)) for name, axes in rules
               if name != "batch")


def gather_params(params, rules=DEFAULT_RULES):
  """FSDP for compute: constrain each parameter to its compute layout (all-gathered over the batch axes);
  its gradient is reduce-scattered back. A no-op outside a mesh context.

  Left to propagation, XLA (jax 0.10.2 CPU, GSPMD and Shardy alike) partitioned the videolatent step on a
  (2, 2, 2) mesh with the batch shards (data=0, fsdp=1) and (1, 0) swapped in the backward pass: right
  loss, wrong gradients. tests/test_sharding.py guards it.
  """
  if jax.sharding.get_abstract_mesh().empty:
    return params
  rules = compute_rules(rules)

  def gather(path, x):
    names = logical_axes(path_string(path)) if x.ndim else ()
    # Stacked layers are gathered one layer at a time inside their scan (models/layers.scan_layers).
    return x if names[:1] == ("layers",) else constrain(x, names, rules)

  return jax.tree_util.tree_map_with_path(gather, params)


def constrain(x: jax.Array, names, rules=DEFAULT_RULES) -> jax.Array:
  """`with_sharding_constraint` by logical names under the current mesh; a no-op outside a mesh context."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty:
    return x
  spec = logical_to_spec(names, x.shape, mesh.shape, rules, where=f"activation {tuple(names)}")
  if DEBUG:
    logger.info("constrain %s %s -> %s", tuple(names), x.shape, spec)
  return jax.lax.with_sharding_constraint(x, spec)
