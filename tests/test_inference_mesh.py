"""Inference on a mesh: a tiny checkpoint loaded split over 8 simulated CPU devices (FSDP, and data x fsdp x
tensor; per-layer and scanned layers) gives the unsharded model's logits and greedy tokens, and its
parameters really are split. The --mesh / --scan-layers flags reach the model from both CLIs.

8 devices exist only if XLA's flag is set before jax starts, so the mesh checks run in one subprocess
(this file run as a script) that prints JSON, as in test_sharding.py.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
from test_eval_cli import ROOT, _run, bench, ckpt  # noqa: F401  (module fixtures: a tiny benchmark and checkpoint)

from vlatent_jax import predict
from vlatent_jax.eval import __main__ as eval_cli
from vlatent_jax.eval import harness

MESHES = [((1, 8, 1), False), ((1, 8, 1), True), ((2, 2, 2), False), ((2, 2, 2), True)]
MULTI_DEVICE_ENV = {"JAX_PLATFORMS": "cpu",
                    # LLVM optimisation level 0 halves compile time; partitioning (what is tested) is unaffected.
                    "XLA_FLAGS": "--xla_force_host_platform_device_count=8 --xla_backend_optimization_level=0"}
GENERATE = {"mode": "videolatent", "num_latents": 2, "max_new_tokens": 4, "return_info": True, "lim_attention": True}


def _name(shape, scan):
  return "x".join(map(str, shape)) + ("-scan" if scan else "")


def _worker() -> dict:
  """Loads the tiny checkpoint unsharded and on each mesh; returns outputs' differences and parameter bytes."""
  import jax
  from flax import nnx
  from tiny_models import CONFIG, GRIDS, ROWS, padded_rows, pixels, tiny_model

  from vlatent_jax import inference, sharding
  from vlatent_jax.checkpoint import save_checkpoint
  from vlatent_jax.config import MeshConfig
  from vlatent_jax.models.config import ExecutionConfig

  ids, mask = padded_rows(ROWS)  # 2 rows: padded to 8 (1x8x1) and 4 (2x2x2) rows for the batch axes
  inputs = {"input_ids": ids, "attention_mask": mask, "pixel_values_videos": pixels(), "video_grid_thw": GRIDS,
            "second_per_grid_ts": np.array([1.0, 0.5])}
  out = {"devices": jax.device_count()}
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "ckpt")
    save_checkpoint(path, CONFIG, nnx.to_pure_dict(nnx.state(tiny_model(), nnx.Param)))
    reference = inference.load(path)
    logits = reference.logits(**inputs)
    tokens, info = reference.generate(**inputs, **GENERATE)
    out["reference"] = {"tokens": tokens.tolist(), "latent_steps": info["latent_steps"].tolist(),
                        "lim_attention_shape": list(info["lim_attention"].shape)}
    for shape, scan in MESHES:
      start = time.time()
      mesh = sharding.make_mesh(MeshConfig(*shape), jax.devices()[:math.prod(shape)])
      model = inference.load(path, mesh=mesh, execution=ExecutionConfig(scan_layers=scan))
      got_tokens, got_info = model.generate(**inputs, **GENERATE)
      leaves = jax.tree.leaves(model.state)
      expected = jax.tree.leaves(sharding.param_shardings(model.state, mesh))
      device0 = mesh.devices.flat[0]
      out[_name(shape, scan)] = {
          "logits_diff": float(np.abs(model.logits(**inputs) - logits).max()),
          "tokens": got_tokens.tolist(), "latent_steps": got_info["latent_steps"].tolist(),
          "lim_attention_diff": float(np.nanmax(np.abs(got_info["lim_attention"] - info["lim_attention"]))),
          "lim_attention_nan_equal": bool((np.isnan(got_info["lim_attention"]) == np.isnan(info["lim_attention"]))
                                          .all()),
          "param_bytes": sum(x.nbytes for x in leaves),
          "param_bytes_device0": sum(s.data.nbytes for x in leaves for s in x.addressable_shards
                                     if s.device == device0),
          "replicated_bytes": sum(x.nbytes for x in leaves if x.sharding.is_fully_replicated),
          "placed_by_rules": all(x.sharding == s for x, s in zip(leaves, expected)),
          "stacked": "llm/layers/mlp/up_proj/kernel" in {
              sharding.path_string(k) for k, _ in jax.tree_util.tree_leaves_with_path(nnx.to_pure_dict(model.state))},
          "seconds": time.time() - start}
  return out


@pytest.fixture(scope="module")
def multi_device():
  start = time.time()
  proc = subprocess.run([sys.executable, __file__], env={**os.environ, **MULTI_DEVICE_ENV}, capture_output=True,
                        text=True, timeout=400, cwd=os.path.dirname(__file__), check=False)
  assert proc.returncode == 0, proc.stderr[-4000:]
  result = json.loads(proc.stdout.strip().splitlines()[-1])
  print({k: round(v["seconds"], 1) for k, v in result.items() if isinstance(v, dict) and "seconds" in v},
        f"{time.time() - start:.0f} s in all")
  return result


@pytest.mark.parametrize("shape, scan", MESHES, ids=[_name(*m) for m in MESHES])
def test_sharded_model_equals_unsharded(multi_device, shape, scan):
  assert multi_device["devices"] == 8
  r, reference = multi_device[_name(shape, scan)], multi_device["reference"]
  assert r["logits_diff"] < 1e-5
  assert r["tokens"] == reference["tokens"] and r["latent_steps"] == reference["latent_steps"] == [2, 2]
  assert r["lim_attention_diff"] < 1e-5 and r["lim_attention_nan_equal"]  # padding rows dropped, NaN past a row's T
  assert r["placed_by_rules"] and r["stacked"] == scan


@pytest.mark.parametrize("shape, scan", MESHES, ids=[_name(*m) for m in MESHES])
def test_parameters_are_split(multi_device, shape, scan):
  r = multi_device[_name(shape, scan)]
  total, mine, replicated = r["param_bytes"], r["param_bytes_device0"], r["replicated_bytes"]
  assert mine < total / 2 and replicated < total / 10  # replicated: norms, the LIM gate, biases of split dims
  if shape == (1, 8, 1):  # every parameter but the replicated ones is split 8 ways over fsdp
    assert mine <= total / 8 + replicated


def test_mesh_flag_parses_and_names_itself(capsys):
  assert harness.parse_mesh("data=1,fsdp=8,tensor=1") == {"data": 1, "fsdp": 8, "tensor": 1}
  assert harness.parse_mesh(" fsdp=-1 ") == {"fsdp": -1}  # data keeps MeshConfig's default
  for bad in ("fsdp8", "pipeline=2", "fsdp=2,fsdp=2", "fsdp=two", "fsdp=0", "data=-1,fsdp=-1", ""):
    with pytest.raises(ValueError, match="--mesh"):
      harness.parse_mesh(bad)
  with pytest.raises(SystemExit):
    predict.parse_args(["--ckpt", "c", "--video", "v", "--question", "q", "--mesh", "tensor=x"])
  assert "--mesh 'tensor=x'" in capsys.readouterr().err
  p = eval_cli._parser()
  with pytest.raises(SystemExit):
    eval_cli._check(p, p.parse_args(["--ckpt", "c", "--bench", "mvbench", "--data", "d", "--mesh", "tensor=x"]))
  assert "--mesh 'tensor=x'" in capsys.readouterr().err


def test_predict_cli_on_a_mesh_answers_as_on_one_device(bench, ckpt):  # noqa: F811
  args = ["--ckpt", ckpt, "--video", bench / "videos" / "test_00000.mp4", "--question", "Which colour appeared first?",
          "--options", "red,blue,green,white", "--max-new-tokens", 4, "--repeats", 0, "--json"]
  plain = _run("vlatent_jax.predict", *args)
  sharded = subprocess.run([sys.executable, "-m", "vlatent_jax.predict", *map(str, args), "--mesh",
                            "data=2,fsdp=2,tensor=2", "--scan-layers"], check=False, cwd=ROOT, capture_output=True,
                           text=True, timeout=300, env={**os.environ, **MULTI_DEVICE_ENV})
  assert plain.returncode == 0, plain.stderr[-3000:]
  assert sharded.returncode == 0, sharded.stderr[-3000:]
  plain, sharded = json.loads(plain.stdout), json.loads(sharded.stdout)
  assert (sharded["output"], sharded["latent_steps"]) == (plain["output"], plain["latent_steps"])


def test_eval_cli_bad_mesh_fails_naming_the_flag(bench, ckpt, tmp_path, capsys):  # noqa: F811
  import jax
  fsdp = jax.device_count() + 1  # no mesh of more devices than there are
  code = eval_cli.main(["--ckpt", ckpt, "--bench", "embedded", "--data", str(bench / "eval.jsonl"),
                        "--out", str(tmp_path), "--mesh", f"fsdp={fsdp}"])
  assert code == 2 and f"error: --mesh 'fsdp={fsdp}'" in capsys.readouterr().err


if __name__ == "__main__":
  print(json.dumps(_worker()))
