"""Sharding: rules cover every parameter, mesh errors name the key, and sharded training equals one device.

The multi-device checks need 8 simulated CPU devices, which XLA only creates when the flag is set
before jax starts, so they run in one subprocess (this file run as a script) that prints JSON.
"""

import json
import logging
import math
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from test_train_step import TINY

from vlatent_jax import sharding
from vlatent_jax.config import ConfigError, MeshConfig, model_config, parse
from vlatent_jax.data.collate import Example
from vlatent_jax.sharding import path_string
from vlatent_jax.train.batch import collate
from vlatent_jax.train.setup import build_model, init_sharded_train_state
from vlatent_jax.train.step import make_train_step

MESHES = [(1, 1, 1), (8, 1, 1), (1, 8, 1), (2, 2, 2)]
SCANNED = (2, 2, 2)  # also trained with scan_layers + remat: the FSDP gather then runs per layer inside the scan
STEPS = 3


def _config(**execution):
  llm = dict(TINY["llm"], tie_word_embeddings=False)  # covers lm_head too
  return parse({"model": dict(TINY, llm=llm, **execution), "latent": {"mode": "videolatent", "num_latents": 3, "num_heads": 4},
                "optim": {"learning_rate": 3e-3, "warmup_steps": 0}, "train": {"steps": 10, "batch_size": 8}})


def _batch(mc, k):
  rng = np.random.RandomState(0)
  grid = np.array([[4, 4, 4]])
  examples = [Example([1, 2, 57] + [60] * 16 + [58, 3 + i], [10 + i, 11 + i % 3, 12], rng.randn(64, 1176)
                      .astype(np.float32), grid, np.array([1.0])) for i in range(8)]
  return collate(examples, mc, num_latents=k, max_answer_len=4)


def _bytes_on(tree, device):
  return sum(s.data.nbytes for x in jax.tree.leaves(tree) for s in x.addressable_shards if s.device == device)


def _worker():
  """Trains STEPS steps on each mesh; returns losses, parameter bytes on device 0 and applied specs."""
  applied = []  # the specs `constrain` logs
  handler = logging.Handler()
  handler.emit = lambda record: applied.append(record.getMessage())
  logger = logging.getLogger(sharding.__name__)
  logger.addHandler(handler)
  logger.setLevel(logging.INFO)
  logger.propagate = False
  sharding.DEBUG = True

  mc = model_config(_config().model, _config().latent)
  host_batch = _batch(mc, _config().latent.steps)
  out = {"devices": jax.device_count()}
  for shape, execution in [(m, {}) for m in MESHES] + [(SCANNED, {"scan_layers": True, "remat": "full"})]:
    config = _config(**execution)
    applied.clear()
    start = time.time()
    mesh = sharding.make_mesh(MeshConfig(*shape), jax.devices()[:math.prod(shape)])
    graphdef, rest, state, tx, schedule, state_sh = init_sharded_train_state(config, mc, mesh, seed=0)
    batch = sharding.shard_batch(host_batch, mesh)
    batch_sh = sharding.batch_shardings(host_batch, mesh)
    replicated = sharding.replicated(mesh)
    step = make_train_step(graphdef, rest, config, tx, schedule, in_shardings=(state_sh, batch_sh, replicated),
                           out_shardings=(state_sh, replicated), mesh=mesh)
    dev0 = mesh.devices.flat[0]
    leaves = jax.tree.leaves(state.params)
    result = {
        "param_bytes": sum(x.nbytes for x in leaves),
        "param_bytes_device0": _bytes_on(state.params, dev0),
        "replicated_bytes": sum(x.nbytes for x in leaves if x.sharding.is_fully_replicated),
        "opt_bytes": sum(x.nbytes for x in jax.tree.leaves(state.opt_state)),
        "opt_bytes_device0": _bytes_on(state.opt_state, dev0),
        "losses": [],
    }
    # Adam moments are sharded like their parameter (their paths end in the parameter's path).
    specs = {path_string(p): x.sharding.spec for p, x in jax.tree_util.tree_leaves_with_path(state.params)}
    moments = [(path_string(p), x.sharding.spec) for p, x in jax.tree_util.tree_leaves_with_path(state.opt_state)
               if x.ndim]
    result["moments_follow_params"] = bool(moments) and all(
        any(name.endswith("/" + k) and spec == specs[k] for k in specs) for name, spec in moments)
    for i in range(STEPS):
      state, metrics = step(state, batch, jax.random.key(i))
      result["losses"].append(float(metrics["loss"]))
    result["shardings_kept"] = all(x.sharding == s for x, s in zip(jax.tree.leaves(state), jax.tree.leaves(state_sh)))
    result["constraints"] = sorted({m for m in applied if m.startswith("constrain")})
    result["seconds"] = time.time() - start
    out["x".join(map(str, shape)) + ("-scan" if execution else "")] = result
  return out


@pytest.fixture(scope="module")
def multi_device():
  # LLVM optimisation level 0 halves compile time; partitioning (what is tested) is unaffected.
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0")
  start = time.time()
  proc = subprocess.run([sys.executable, __file__], env=env, capture_output=True, text=True, timeout=300,
                        cwd=os.path.dirname(__file__), check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  result["seconds"] = time.time() - start
  print({k: v["losses"] for k, v in result.items() if isinstance(v, dict)}, f"{result['seconds']:.0f} s")
  return result


def test_sharded_losses_equal_one_device(multi_device):
  assert multi_device["devices"] == 8
  reference = multi_device["1x1x1"]["losses"]
  assert len(reference) == STEPS and reference[-1] < reference[0]
  for name in ["x".join(map(str, shape)) for shape in MESHES[1:]] + ["x".join(map(str, SCANNED)) + "-scan"]:
    np.testing.assert_allclose(multi_device[name]["losses"], reference, rtol=0, atol=1e-5, err_msg=name)
    assert multi_device[name]["shardings_kept"] and multi_device[name]["moments_follow_params"], name


def test_fsdp_splits_parameters_and_optimizer_state(multi_device):
  r = multi_device["1x8x1"]
  total, mine, rep = r["param_bytes"], r["param_bytes_device0"], r["replicated_bytes"]
  assert mine <= total / 8 + rep and mine < total / 2
  assert rep < total / 10  # only norms, biases of tensor-parallel dims, the gate and ragged dims
  assert r["opt_bytes_device0"] < r["opt_bytes"] / 4
  assert multi_device["1x1x1"]["param_bytes_device0"] == total


def test_activations_are_constrained_by_logical_names(multi_device):
  specs = "\n".join(multi_device["2x2x2"]["constraints"])
  assert "('batch', 'length', 'embed')" in specs and "P(('data', 'fsdp'), None, None)" in specs
  assert "('batch', 'length', 'vocab')" in specs and "P(('data', 'fsdp'), None, 'tensor')" in specs


def test_every_parameter_has_a_rule():
  config = _config()
  params = jax.eval_shape(lambda: build_model(config, model_config(config.model, config.latent), 0)[1])
  for path, x in jax.tree_util.tree_leaves_with_path(params):
    names = sharding.logical_axes(path_string(path))
    assert len(names) == x.ndim, (path_string(path), names)
    assert all(n is None or isinstance(n, str) for n in names)
  with pytest.raises(ValueError, match="llm/layers/0/mystery/kernel"):
    sharding.logical_axes("llm/layers/0/mystery/kernel")


def test_logical_specs():
  mesh_shape = {"data": 2, "fsdp": 2, "tensor": 2}
  P = jax.sharding.PartitionSpec
  assert sharding.logical_to_spec(("embed", "mlp"), (32, 64), mesh_shape) == P("fsdp", "tensor")
  assert sharding.logical_to_spec(("batch", "length", "embed"), (8, 5, 32), mesh_shape) == P(("data", "fsdp"), None,
                                                                                           None)
  # A dimension the mesh axes do not divide stays whole; the others still shard.
  assert sharding.logical_to_spec(("embed", "heads"), (32, 3), mesh_shape) == P("fsdp", None)
  assert sharding.logical_to_spec(("norm",), (32,), mesh_shape) == P(None)


def test_wrong_mesh_product_fails_naming_mesh():
  with pytest.raises(ConfigError, match=r"mesh\."):
    sharding.make_mesh(MeshConfig(data=2, fsdp=1, tensor=1), jax.devices()[:1])
  with pytest.raises(ConfigError, match=r"mesh\.fsdp"):
    sharding.make_mesh(MeshConfig(data=3, fsdp=-1, tensor=1), [jax.devices()[0]] * 2)
  mesh = sharding.make_mesh(MeshConfig(data=-1), jax.devices()[:1])
  assert dict(mesh.shape) == {"data": 1, "fsdp": 1, "tensor": 1}


def test_constrain_is_a_noop_without_mesh():
  x = jnp.ones((4, 3, 8))
  assert sharding.constrain(x, ("batch", "length", "embed")) is x
  jaxpr = jax.make_jaxpr(lambda y: sharding.constrain(y, ("batch", "length", "embed")) * 2)(x)
  assert "sharding_constraint" not in str(jaxpr)


if __name__ == "__main__":
  print(json.dumps(_worker()))


def test_pretrained_parameters_are_placed_into_their_shards():
  config = _config()
  mc = model_config(config.model, config.latent)
  shapes = nnx.to_pure_dict(jax.eval_shape(lambda: build_model(config, mc, 0)[1]))
  rng = np.random.RandomState(1)
  pretrained = {k: jax.tree.map(lambda x: rng.randn(*x.shape).astype(np.float32), v)
                for k, v in shapes.items() if k != "latent"}  # a checkpoint without the LIM
  mesh = sharding.make_mesh(MeshConfig(), jax.devices()[:1])
  _, _, state, _, _, shardings = init_sharded_train_state(config, mc, mesh, 0, pretrained=pretrained)
  _, fresh, _ = build_model(config, mc, 0)
  loaded = nnx.to_pure_dict(state.params)
  for a, b in zip(jax.tree.leaves(pretrained), jax.tree.leaves({k: loaded[k] for k in pretrained})):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # The LIM keeps its fresh initialisation (jitted init rounds the normal samples an ulp apart from eager).
  for a, b in zip(jax.tree.leaves(nnx.to_pure_dict(fresh)["latent"]), jax.tree.leaves(loaded["latent"])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9)
  assert all(x.sharding == s for x, s in zip(jax.tree.leaves(state), jax.tree.leaves(shardings)))
