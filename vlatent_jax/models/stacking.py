"""One on-disk parameter layout for scanned and unscanned models.

Checkpoints, exports and Hugging Face conversion always hold one subtree per layer
(`llm/layers/<i>/...`, `vision/blocks/<i>/...`). A model built with `ExecutionConfig.scan_layers` holds each
container as one subtree whose leaves carry a leading [L] axis. These two functions move a pure parameter
dict (nested dicts of arrays) between the two, losslessly; both are identities on a tree already in the
requested layout, so callers need not know how the tree was built.
"""

from __future__ import annotations

import jax
import numpy as np

LAYER_CONTAINERS = (("llm", "layers"), ("vision", "blocks"))


def _is_per_layer(node) -> bool:
  return isinstance(node, dict) and bool(node) and all(isinstance(k, int) or str(k).isdigit() for k in node)


def _map_containers(params: dict, fn) -> dict:
  out = dict(params)
  for parent, name in LAYER_CONTAINERS:
    if isinstance(out.get(parent), dict) and name in out[parent]:
      out[parent] = {**out[parent], name: fn(out[parent][name], f"{parent}/{name}")}
  return out


def stack_layers(params: dict, xp=np) -> dict:
  """Per-layer subtrees -> one stacked subtree per container (`xp.stack`: numpy or jax.numpy)."""
  def stack(node, where):
    if not _is_per_layer(node):
      return node
    layers = [node[k] for k in sorted(node, key=int)]
    if [int(k) for k in sorted(node, key=int)] != list(range(len(layers))):
      raise ValueError(f"'{where}': layer indices {sorted(node, key=int)} are not 0..{len(layers) - 1}")
    return jax.tree.map(lambda *xs: xp.stack(xs), *layers)
  return _map_containers(params, stack)


def unstack_layers(params: dict) -> dict:
  """One stacked subtree per container -> per-layer subtrees with int keys."""
  def unstack(node, where):
    if _is_per_layer(node) or not isinstance(node, dict):
      return node
    sizes = {int(np.shape(x)[0]) for x in jax.tree.leaves(node)}
    if len(sizes) != 1:
      raise ValueError(f"'{where}': stacked leaves disagree on the number of layers {sorted(sizes)}")
    return {i: jax.tree.map(lambda x: x[i], node) for i in range(sizes.pop())}
  return _map_containers(params, unstack)
