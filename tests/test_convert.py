"""HF <-> vlatent_jax checkpoint conversion: bit-exact round trips, both key and config layouts, clear errors."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")
from hf_fixtures import build_hf_model, make_inputs, to_torch  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402
from transformers import Qwen2_5_VLForConditionalGeneration  # noqa: E402

import vlatent_jax  # noqa: E402
from vlatent_jax.checkpoint import is_checkpoint, load_checkpoint, load_params, save_checkpoint  # noqa: E402
from vlatent_jax.convert.__main__ import main  # noqa: E402
from vlatent_jax.convert.hf import CheckpointError, expected_params, flatten, read_hf, unflatten  # noqa: E402
from vlatent_jax.convert.hf_config import config_from_hf, config_to_hf  # noqa: E402
from vlatent_jax.models.config import ConfigError  # noqa: E402
from vlatent_jax.models.vlm import VideoLM  # noqa: E402

CUSTOM = {"keep": [1, 2], "note": "unknown fields survive"}


def to_canonical_keys(directory):
  """Rewrites save_pretrained's `visual.*` / `model.*` keys to `model.visual.*` / `model.language_model.*`."""
  def rename(k):
    if k.startswith("visual."):
      return "model." + k
    return "model.language_model." + k[len("model."):] if k.startswith("model.") else k
  for f in glob.glob(os.path.join(directory, "*.safetensors")):
    save_file({rename(k): v for k, v in load_file(f).items()}, f, metadata={"format": "pt"})
  index = os.path.join(directory, "model.safetensors.index.json")
  if os.path.exists(index):
    data = json.load(open(index))
    data["weight_map"] = {rename(k): v for k, v in data["weight_map"].items()}
    json.dump(data, open(index, "w"))


def to_flat_config(nested):
  """The released-checkpoint config.json layout: text fields at top level, rope_scaling mrope, in_chans."""
  flat = {k: v for k, v in nested.items() if k != "text_config"}
  text = dict(nested["text_config"])
  rope = text.pop("rope_parameters")
  for k in ("model_type", "layer_types", "dtype"):
    text.pop(k, None)
  flat.update(text, rope_theta=rope["rope_theta"], rope_scaling={"type": "mrope", "mrope_section": rope["mrope_section"]},
              sliding_window=32768, max_window_layers=70, torch_dtype=flat.pop("dtype"))
  vision = {k: v for k, v in nested["vision_config"].items() if k not in ("model_type", "rope_parameters")}
  vision["in_chans"] = vision.pop("in_channels")
  flat["vision_config"] = vision
  return flat


def make_source(directory, *, dtype="float32", tie=False, shard=False, layout="legacy", flat=False):
  model, _ = build_hf_model(tie_word_embeddings=tie)
  model.to(getattr(torch, dtype)).save_pretrained(directory, max_shard_size="200KB" if shard else "1GB")
  if layout == "canonical":
    to_canonical_keys(directory)
  path = os.path.join(directory, "config.json")
  cfg = json.load(open(path))
  cfg = to_flat_config(cfg) if flat else cfg
  cfg["my_custom_field"] = CUSTOM
  json.dump(cfg, open(path, "w"), indent=2)
  for name, text in (("tokenizer_config.json", "{}"), ("chat_template.jinja", "{{ messages }}")):
    open(os.path.join(directory, name), "w").write(text)
  return directory


def read_tensors(directory):
  return {k: v for f in glob.glob(os.path.join(directory, "*.safetensors")) for k, v in load_file(f).items()}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
  return make_source(str(tmp_path_factory.mktemp("base") / "hf"))


def run_cli(*args):
  return subprocess.run([sys.executable, "-m", "vlatent_jax.convert", *args], capture_output=True, text=True)


def hf_load(directory):
  model, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(directory, output_loading_info=True)
  assert all(not v for v in info.values()), info
  return model.eval()


CASES = [dict(dtype="float32", tie=False, shard=False, layout="legacy", flat=False),
         dict(dtype="bfloat16", tie=True, shard=True, layout="legacy", flat=True),
         dict(dtype="bfloat16", tie=False, shard=True, layout="canonical", flat=False),
         dict(dtype="float32", tie=True, shard=False, layout="canonical", flat=True)]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_round_trip_bit_identical(tmp_path, case):
  src = make_source(str(tmp_path / "src"), **case)
  ckpt, out = str(tmp_path / "ckpt"), str(tmp_path / "out")
  shard_size = "200KB" if case["shard"] else "2GB"
  if case is CASES[0]:  # once through a real subprocess
    r = run_cli("hf-to-jax", "--hf-dir", src, "--out", ckpt)
    assert r.returncode == 0 and "tensors" in r.stdout and "bytes" in r.stdout, r.stderr
  else:
    assert main(["hf-to-jax", "--hf-dir", src, "--out", ckpt]) == 0
  assert main(["jax-to-hf", "--ckpt", ckpt, "--out", out, "--max-shard-size", shard_size]) == 0
  assert is_checkpoint(ckpt)

  a, b = read_tensors(src), read_tensors(out)
  assert sorted(a) == sorted(b)
  for k in a:
    assert a[k].dtype == b[k].dtype and a[k].dtype.name == case["dtype"], k
    assert a[k].shape == b[k].shape and a[k].tobytes() == b[k].tobytes(), k
  assert os.path.exists(os.path.join(out, "model.safetensors.index.json")) == case["shard"]
  if case["shard"]:
    index = json.load(open(os.path.join(out, "model.safetensors.index.json")))
    assert index["metadata"]["total_size"] == sum(x.nbytes for x in b.values()) and sorted(index["weight_map"]) == sorted(b)
  for name in ("tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
    assert open(os.path.join(src, name)).read() == open(os.path.join(out, name)).read()

  src_cfg, out_cfg = (json.load(open(os.path.join(d, "config.json"))) for d in (src, out))
  assert config_from_hf(src_cfg) == config_from_hf(out_cfg)
  assert out_cfg["my_custom_field"] == CUSTOM and ("text_config" in out_cfg) == (not case["flat"])
  assert set(src_cfg) <= set(out_cfg)

  inputs = to_torch(make_inputs(hf_load(src).config, [[4, (1, 4, 4), 3]]))
  with torch.no_grad():
    expected, actual = hf_load(src)(**inputs).logits, hf_load(out)(**inputs).logits
  assert torch.equal(expected, actual)


def test_hf_logits_match_our_model(base_dir):
  """The read params drive our model to HF's logits (text-only, so positions are plain aranges)."""
  config, params, meta = read_hf(base_dir)
  assert meta["hf_layout"] == "legacy" and "tokenizer_config.json" in meta["files"]
  graphdef, state = nnx.split(nnx.eval_shape(lambda: VideoLM(config, rngs=nnx.Rngs(0))))
  nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))  # fails unless the trees match
  model = nnx.merge(graphdef, state)
  ids = np.array([[1, 7, 9, 30, 4, 100, 42]])
  pos = np.broadcast_to(np.arange(ids.shape[1]), (3, 1, ids.shape[1]))
  mask = np.tril(np.ones((ids.shape[1],) * 2, bool))[None]
  hidden, _ = model(jnp.asarray(ids), jnp.asarray(pos), jnp.asarray(mask))
  ours = np.asarray(model.llm.logits(hidden))
  with torch.no_grad():
    ref = hf_load(base_dir)(input_ids=torch.tensor(ids)).logits.numpy()
  np.testing.assert_allclose(ours, ref, atol=2e-4, rtol=1e-4)


def test_dtype_cast_and_checkpoint_bits(tmp_path, base_dir):
  config, f32, meta = read_hf(base_dir)
  _, bf16, _ = read_hf(base_dir, dtype="bfloat16")
  flat32, flat16 = flatten(f32), flatten(bf16)
  assert all(v.dtype == np.dtype("bfloat16") for v in flat16.values())
  assert all(np.array_equal(flat16[k], flat32[k].astype(flat16[k].dtype)) for k in flat32)
  # Every bf16 bit pattern (NaN payloads, infs, subnormals) survives orbax exactly.
  flat16["vision/merger/ln_q/weight"] = np.arange(2**16, dtype=np.uint16).view(np.dtype("bfloat16"))[:64]
  patterns = np.random.default_rng(0).integers(0, 2**16, flat16["llm/norm/weight"].shape, dtype=np.uint16)
  flat16["llm/norm/weight"] = patterns.view(np.dtype("bfloat16"))
  path = save_checkpoint(tmp_path / "ck", config, unflatten(flat16), meta)
  config2, loaded, meta2 = load_checkpoint(path)
  assert config2 == config and meta2["hf_config"] == meta["hf_config"] and meta2["hf_layout"] == "legacy"
  for k, v in flatten(loaded).items():
    assert isinstance(v, np.ndarray) and v.dtype == flat16[k].dtype and v.tobytes() == flat16[k].tobytes(), k
  assert isinstance(next(iter(loaded["vision"]["blocks"])), int)
  _, up, _ = load_checkpoint(path, dtype="float32")
  assert all(v.dtype == np.float32 for v in flatten(up).values())
  # load_params dispatches on what the directory holds.
  assert load_params(path)[0] == config and load_params(base_dir)[0] == config
  with pytest.raises(FileExistsError, match="already exists"):
    save_checkpoint(path, config, loaded)
  save_checkpoint(path, config, f32, overwrite=True)
  assert flatten(load_checkpoint(path)[1])["llm/norm/weight"].dtype == np.float32
  with pytest.raises(TypeError, match=r"\['x'\].*not an array"):  # nothing left behind
    save_checkpoint(tmp_path / "bad", config, {"x": object()})
  assert sorted(os.listdir(tmp_path)) == ["ck"]


def corrupt(base_dir, tmp_path, edit):
  d = str(tmp_path / "bad")
  shutil.copytree(base_dir, d)
  f = os.path.join(d, "model.safetensors")
  tensors = load_file(f)
  edit(tensors)
  save_file(tensors, f, metadata={"format": "pt"})
  return d


@pytest.mark.parametrize("edit,pattern", [
    (lambda t: t.update({"model.bogus.weight": np.zeros(3, np.float32)}),
     r"unknown parameter 'model\.bogus\.weight' in '[^']*/bad/model\.safetensors'"),
    (lambda t: t.update({"model.norm.weight": np.ones(7, np.float32)}), r"'model\.norm\.weight'.*\[7\].*\[64\]"),
    (lambda t: t.pop("visual.merger.ln_q.weight"), r"missing 1 parameter.*visual\.merger\.ln_q\.weight"),
    (lambda t: t.update({"model.layers.9.mlp.up_proj.weight": np.ones(3, np.float32)}),
     "model.layers.9.mlp.up_proj.weight"),
])
def test_cli_bad_tensors(tmp_path, base_dir, capsys, edit, pattern):
  d = corrupt(base_dir, tmp_path, edit)
  assert main(["hf-to-jax", "--hf-dir", d, "--out", str(tmp_path / "ck")]) == 2
  err = capsys.readouterr().err
  assert len(err.strip().splitlines()) == 1 and re.search(pattern, err), err
  assert not os.path.exists(tmp_path / "ck")
  with pytest.raises(CheckpointError):
    read_hf(d)


def test_cli_bad_inputs(tmp_path, base_dir, capsys):
  llama = str(tmp_path / "llama")
  shutil.copytree(base_dir, llama)
  cfg = json.load(open(os.path.join(llama, "config.json")))
  json.dump({**cfg, "model_type": "llama", "architectures": ["LlamaForCausalLM"]},
            open(os.path.join(llama, "config.json"), "w"))
  cases = [(["hf-to-jax", "--hf-dir", llama, "--out", str(tmp_path / "a")], "model_type"),
           (["hf-to-jax", "--hf-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "b")], "missing"),
           (["jax-to-hf", "--ckpt", str(tmp_path / "missing"), "--out", str(tmp_path / "c")], "missing"),
           (["hf-to-jax", "--hf-dir", base_dir, "--out", llama], "already exists")]
  for argv, needle in cases:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
  with pytest.raises(FileNotFoundError, match="nope"):
    load_params(tmp_path / "nope")
  with pytest.raises(ValueError, match="neither a Hugging Face checkpoint"):
    load_params(tmp_path)


@pytest.fixture(scope="module")
def sharded_dir(tmp_path_factory):
  return make_source(str(tmp_path_factory.mktemp("sharded") / "hf"), shard=True)


def _truncate(path):
  data = open(path, "rb").read()
  open(path, "wb").write(data[:len(data) // 2])


def _shard(directory, i):
  return sorted(glob.glob(os.path.join(directory, "model-*.safetensors")))[i]


BAD_FILES = ["truncated_shard", "shard_cut_in_header", "not_safetensors", "empty_shard", "tensor_not_in_shard",
             "index_not_json", "config_not_json"]


def _damage(d, kind):
  """Damages the sharded HF directory `d`; returns the expected error message, which names the bad file."""
  shard, index = _shard(d, 1), os.path.join(d, "model.safetensors.index.json")
  if kind == "truncated_shard":
    _truncate(shard)
    return rf"'{re.escape(shard)}' is truncated \(\d+ of \d+ bytes\)"
  if kind == "shard_cut_in_header":
    os.truncate(shard, 100)
    return rf"'{re.escape(shard)}' is truncated \(100 bytes, inside its \d+-byte header\)"
  if kind == "not_safetensors":
    open(shard, "w").write("<html>404</html>")
    return rf"'{re.escape(shard)}' is not a safetensors file"
  if kind == "empty_shard":
    os.truncate(shard, 0)
    return rf"'{re.escape(shard)}' is empty"
  if kind == "tensor_not_in_shard":  # the index sends a tensor to a shard that does not hold it
    data = json.load(open(index))
    key = next(k for k, v in data["weight_map"].items() if v != os.path.basename(shard))
    data["weight_map"][key] = os.path.basename(shard)
    json.dump(data, open(index, "w"))
    return rf"index '{re.escape(index)}' maps '{re.escape(key)}' to '{re.escape(shard)}', which has no such tensor"
  if kind == "index_not_json":
    open(index, "w").write("{")
    return rf"index '{re.escape(index)}' is not valid JSON"
  assert kind == "config_not_json"
  config = os.path.join(d, "config.json")
  open(config, "w").write("{'a': 1}")
  return rf"config '{re.escape(config)}' is not valid JSON"


@pytest.mark.parametrize("damage", BAD_FILES)
def test_unreadable_hf_file_is_named(tmp_path, sharded_dir, capsys, damage):
  """A bad shard, index or config fails naming the file and what is wrong, from the CLI and the library."""
  d = str(tmp_path / "hf")
  shutil.copytree(sharded_dir, d)
  pattern = _damage(d, damage)
  out = str(tmp_path / "ck")
  if damage == "truncated_shard":  # once through a real process: one line, no traceback
    r = run_cli("hf-to-jax", "--hf-dir", d, "--out", out)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
    err = r.stderr
  else:
    assert main(["hf-to-jax", "--hf-dir", d, "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
  assert re.search(pattern, err), err
  assert not os.path.exists(out)
  with pytest.raises(CheckpointError, match=pattern) as info:
    vlatent_jax.load(d)
  if damage != "tensor_not_in_shard":  # the others re-raise a library error
    assert info.value.__cause__ is not None


def _damage_params(ckpt):
  """Truncates the largest zarr chunk (the embedding) of a saved checkpoint."""
  chunks = [p for p in glob.glob(os.path.join(ckpt, "params", "*", "*")) if not os.path.basename(p).startswith(".")]
  _truncate(max(chunks, key=os.path.getsize))


# After a failed read, tensorstore callbacks still in flight hit orbax's closed asyncio loop
# ("Event loop is closed", printed as unraisable); the CLI filters that noise, the library cannot.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("damage", ["chunk", "metadata", "array_dir"])
def test_damaged_checkpoint_is_named(tmp_path, base_dir, capsys, damage):
  ckpt = str(tmp_path / "ck")
  assert main(["hf-to-jax", "--hf-dir", base_dir, "--out", ckpt]) == 0
  if damage == "chunk":
    _damage_params(ckpt)
  elif damage == "metadata":
    os.remove(os.path.join(ckpt, "params", "_METADATA"))
  else:
    shutil.rmtree(os.path.join(ckpt, "params", "llm.norm.weight"))
  pattern = rf"checkpoint '{re.escape(ckpt)}': cannot read the parameters in '{re.escape(ckpt)}/params'"
  out = str(tmp_path / "hf")
  if damage == "chunk":  # a real process: orbax's background noise must not reach stderr
    r = run_cli("jax-to-hf", "--ckpt", ckpt, "--out", out)
    err = r.stderr
    assert r.returncode == 2, err
  else:
    assert main(["jax-to-hf", "--ckpt", ckpt, "--out", out]) == 2
    err = capsys.readouterr().err
  assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and re.search(pattern, err), err
  assert not os.path.exists(out)
  with pytest.raises(CheckpointError, match=pattern):
    load_params(ckpt)


def test_config_validation(base_dir):
  cfg = json.load(open(os.path.join(base_dir, "config.json")))
  text = cfg["text_config"]
  bad = [({**cfg, "architectures": ["Qwen2VLForConditionalGeneration"]}, "architectures"),
         ({**cfg, "text_config": {**text, "use_sliding_window": True}}, "use_sliding_window"),
         ({**cfg, "text_config": {**text, "rope_parameters": {**text["rope_parameters"], "rope_type": "yarn",
                                                               "factor": 2.0}}}, "rope_type"),
         ({**cfg, "text_config": {**text, "hidden_size": "x"}}, "hidden_size")]
  for d, field in bad:
    with pytest.raises(ConfigError, match=field):
      config_from_hf(d)
  # Released layout and nested layout describe the same model; both round-trip through HF's class.
  from transformers import Qwen2_5_VLConfig
  flat = to_flat_config(cfg)
  config = config_from_hf(cfg)
  assert config_from_hf(flat) == config
  for base in (cfg, flat, None):
    out = config_to_hf(config, base)
    assert config_from_hf(out) == config and Qwen2_5_VLConfig(**out).text_config.hidden_size == 64
  eos = config_from_hf({**cfg, "text_config": {**text, "eos_token_id": [5, 6]}})
  assert eos.eos_token_ids == (5, 6) and config_to_hf(eos, cfg)["text_config"]["eos_token_id"] == [5, 6]
  # A stale pre-v5 `text_config.tie_word_embeddings: true` must not re-tie an untied model.
  assert not config.llm.tie_word_embeddings
  untied = config_to_hf(config, {**cfg, "text_config": {**text, "tie_word_embeddings": True}})
  assert Qwen2_5_VLConfig(**untied).tie_word_embeddings is False
  # HF's initializer_range (random initialisation only) is read from both sub-configs and written back.
  ranged = config_from_hf({**cfg, "text_config": {**text, "initializer_range": 0.05},
                           "vision_config": {**cfg["vision_config"], "initializer_range": 0.07}})
  assert (ranged.llm.initializer_range, ranged.vision.initializer_range) == (0.05, 0.07)
  assert config_from_hf(config_to_hf(ranged, cfg)) == ranged


def test_tied_lm_head_in_file_and_dtype_flag(tmp_path):
  """A tied checkpoint that still stores lm_head: equal -> kept out of params and re-emitted; else untied (as HF)."""
  src = make_source(str(tmp_path / "src"), tie=True)
  f = os.path.join(src, "model.safetensors")
  tensors = load_file(f)
  tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].copy()
  save_file(tensors, f, metadata={"format": "pt"})
  config, params, meta = read_hf(src)
  assert config.llm.tie_word_embeddings and "lm_head" not in params["llm"] and meta["tied_lm_head_saved"]
  assert main(["hf-to-jax", "--hf-dir", src, "--out", str(tmp_path / "ck"), "--dtype", "float16"]) == 0
  assert main(["jax-to-hf", "--ckpt", str(tmp_path / "ck"), "--out", str(tmp_path / "out")]) == 0
  out = read_tensors(str(tmp_path / "out"))
  assert sorted(out) == sorted(tensors) and all(v.dtype == np.float16 for v in out.values())
  assert np.array_equal(out["lm_head.weight"], tensors["lm_head.weight"].astype(np.float16))
  out_cfg = json.load(open(tmp_path / "out" / "config.json"))
  assert out_cfg["dtype"] == "float16" and out_cfg["tie_word_embeddings"] is True

  tensors["lm_head.weight"] = tensors["lm_head.weight"] + 1
  save_file(tensors, f, metadata={"format": "pt"})
  config, params, _ = read_hf(src)
  assert not config.llm.tie_word_embeddings
  assert np.array_equal(params["llm"]["lm_head"]["kernel"], tensors["lm_head.weight"].T)


def test_fresh_checkpoint_exports_to_hf(tmp_path, base_dir):
  """A checkpoint saved from scratch (no HF source: canonical keys, config built from ModelConfig alone)."""
  config = read_hf(base_dir)[0]
  rng = np.random.default_rng(0)
  params = unflatten({p: rng.standard_normal(v[3]).astype(np.float32) for p, v in expected_params(config).items()})
  (tmp_path / "tok").mkdir()
  (tmp_path / "tok" / "tokenizer.json").write_text("{}")
  save_checkpoint(tmp_path / "ck", config, params, {"video_processor": {"max_pixels": 12544}},
                  tokenizer_dir=tmp_path / "tok")
  assert load_checkpoint(tmp_path / "ck")[2]["video_processor"] == {"max_pixels": 12544}
  assert main(["jax-to-hf", "--ckpt", str(tmp_path / "ck"), "--out", str(tmp_path / "hf")]) == 0
  assert (tmp_path / "hf" / "tokenizer.json").read_text() == "{}"
  assert all(k.startswith(("model.visual.", "model.language_model.", "lm_head.")) for k in read_tensors(tmp_path / "hf"))
  model = hf_load(str(tmp_path / "hf"))
  assert np.array_equal(model.lm_head.weight.detach().numpy(), params["llm"]["lm_head"]["kernel"].T)
  assert read_hf(tmp_path / "hf")[0] == config
