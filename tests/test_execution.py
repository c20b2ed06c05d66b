"""Execution options change how a model computes, never what: scan over layers, remat, attention kernels.

Every variant is compared with the reference (Python loop over layers, no remat, einsum attention) on the
latent rollout's outputs and on the gradients of every parameter, and a scanned model's parameters move to
and from the one on-disk per-layer layout losslessly.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_rollout import _batch, _objective

from tiny_models import CONFIG, tiny_model
from vlatent_jax import sharding
from vlatent_jax.config import ConfigError, parse
from vlatent_jax.models.config import ExecutionConfig
from vlatent_jax.models.decoder import KVCache, causal_mask, text_positions
from vlatent_jax.models.stacking import stack_layers, unstack_layers
from vlatent_jax.models.vlm import VideoLM
from vlatent_jax.rollout import self_forcing_rollout

REFERENCE = ExecutionConfig(remat="none", scan_layers=False, attention="einsum")
VARIANTS = [
    ExecutionConfig(scan_layers=True, attention="einsum"),
    ExecutionConfig(scan_layers=True, remat="full", attention="einsum"),
    ExecutionConfig(scan_layers=True, remat="dots_with_no_batch_dims_saveable", attention="xla"),
    ExecutionConfig(scan_layers=False, remat="full", attention="xla"),
    ExecutionConfig(scan_layers=False, attention="auto"),
]


def _model(execution):
  """tiny_model's parameters (LIM gate opened) in a model built with `execution`."""
  reference = nnx.to_pure_dict(nnx.state(tiny_model(), nnx.Param))
  model = VideoLM(CONFIG, rngs=nnx.Rngs(0), execution=execution)
  state = nnx.state(model, nnx.Param)
  nnx.replace_by_pure_dict(state, stack_layers(reference, jnp) if execution.scan_layers else reference)
  nnx.update(model, state)
  return model


@functools.lru_cache(maxsize=None)
def _value_and_grads(execution, num_latents):
  batch = _batch(num_latents)
  graphdef, params, rest = nnx.split(_model(execution), nnx.Param, ...)

  def loss(params):
    out = self_forcing_rollout(nnx.merge(graphdef, params, rest), batch, num_latents=num_latents, use_lim=True)
    return _objective(out.logits, out.latents)

  value, grads = jax.jit(jax.value_and_grad(loss))(params)
  return float(value), unstack_layers(jax.tree.map(np.asarray, nnx.to_pure_dict(grads)))


@pytest.mark.parametrize("execution", VARIANTS, ids=lambda e: f"{e.scan_layers}-{e.remat}-{e.attention}")
def test_variants_equal_the_reference_values_and_gradients(execution):
  with jax.default_matmul_precision("highest"):
    ref_value, ref_grads = _value_and_grads(REFERENCE, 3)
    value, grads = _value_and_grads(execution, 3)
  np.testing.assert_allclose(value, ref_value, rtol=1e-5, atol=1e-7)
  flat_ref = dict(jax.tree_util.tree_leaves_with_path(ref_grads))
  flat = dict(jax.tree_util.tree_leaves_with_path(grads))
  assert flat.keys() == flat_ref.keys()
  for key, g in flat_ref.items():
    name = jax.tree_util.keystr(key)
    assert np.abs(g).max() > 0 or not ("layers" in name or "blocks" in name), name  # the objective reaches it
    np.testing.assert_allclose(flat[key], g, rtol=1e-4, atol=1e-6, err_msg=jax.tree_util.keystr(key))


def test_scanned_model_starts_like_the_unscanned_one_and_round_trips():
  loop = nnx.to_pure_dict(nnx.state(VideoLM(CONFIG, rngs=nnx.Rngs(3)), nnx.Param))
  scanned = nnx.to_pure_dict(nnx.state(VideoLM(CONFIG, rngs=nnx.Rngs(3), execution=ExecutionConfig(
      scan_layers=True)), nnx.Param))
  assert scanned["llm"]["layers"]["self_attn"]["q_proj"]["kernel"].shape == (2, 32, 32)  # [L, D, N*H]
  assert scanned["vision"]["blocks"]["attn"]["qkv"]["kernel"].shape == (2, 32, 96)
  for a, b in ((unstack_layers(scanned), loop), (stack_layers(loop), scanned)):
    jax.tree.map(np.testing.assert_array_equal, a, b)
  jax.tree.map(np.testing.assert_array_equal, unstack_layers(loop), loop)  # identity on the per-layer layout
  jax.tree.map(np.testing.assert_array_equal, stack_layers(scanned), scanned)


def test_stacked_parameters_get_a_replicated_layer_axis():
  assert sharding.logical_axes("llm/layers/self_attn/q_proj/kernel") == ("layers", "embed", "heads")
  assert sharding.logical_axes("llm/layers/3/self_attn/q_proj/kernel") == ("embed", "heads")
  assert sharding.logical_axes("opt/0/mu/vision/blocks/mlp/down_proj/bias") == ("layers", "embed")
  spec = sharding.logical_to_spec(("layers", "embed", "heads"), (36, 2048, 2048), {"data": 1, "fsdp": 8, "tensor": 1})
  assert spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor")


@pytest.mark.parametrize("key,value", [("remat", "sometimes"), ("attention", "flash"), ("scan_layers", "yes")])
def test_bad_execution_options_fail_naming_the_key(key, value):
  with pytest.raises(ConfigError, match=f"model.{key}"):
    parse({"model": {key: value}})


@pytest.mark.parametrize("scan", [False, True], ids=["loop", "scan"])
def test_a_read_only_prefix_cache_computes_what_one_full_cache_computes(scan):
  """The latent steps read the prompt's keys as a `prefix` and write only their own slots: hidden states,
  the written keys and the attention weights over [prefix, own slots] equal one cache holding both."""
  llm = _model(ExecutionConfig(scan_layers=scan)).llm
  cfg, b, p, t = llm.config, 2, 7, 3
  embeds = jax.random.normal(jax.random.key(0), (b, p + t, cfg.hidden_size))
  positions = text_positions(jnp.zeros((b,), jnp.int32), p + t)
  key_valid = jnp.ones((b, p + t), bool).at[0, 1].set(False)  # a padded prompt key
  with jax.default_matmul_precision("highest"):
    _, prompt = llm(embeds[:, :p], positions[..., :p], causal_mask(key_valid[:, :p], 0, p),
                    KVCache.empty(cfg, b, p, jnp.float32), 0)
    full = KVCache(*(jnp.concatenate([c, jnp.zeros((cfg.num_hidden_layers, b, t) + c.shape[3:])], axis=2)
                     for c in prompt))
    mask = causal_mask(key_valid, p, t)
    want, want_cache, want_w = llm(embeds[:, p:], positions[..., p:], mask, full, p, return_weights=True)
    got, got_cache, got_w = llm(embeds[:, p:], positions[..., p:], mask, KVCache.empty(cfg, b, t, jnp.float32), 0,
                                return_weights=True, prefix=prompt)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(got_w, want_w, rtol=1e-5, atol=1e-7)
  assert got_w.shape[-1] == p + t
  for g, w in zip(got_cache, want_cache):
    np.testing.assert_allclose(g, w[:, :, p:], rtol=1e-5, atol=1e-6)
