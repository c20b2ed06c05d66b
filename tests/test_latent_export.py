"""Loading a plain HF model for latent training adds the latent tokens; export keeps them and the LIM."""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import nnx

import hf_fixtures as hfx
from vlatent_jax.checkpoint import load_checkpoint, save_checkpoint
from vlatent_jax.config import ConfigError, parse
from vlatent_jax.convert.hf import flatten, read_hf
from vlatent_jax.data.tokenizer import SPECIAL_TOKENS, train_tokenizer
from vlatent_jax.latent_tokens import LATENT_TOKENS
from vlatent_jax.train.setup import build_model, load_pretrained

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def plain_hf_dir(tmp_path_factory):
  """A tiny HF model whose tokenizer lacks the latent tokens and fills the whole vocabulary."""
  root = tmp_path_factory.mktemp("plain")
  base_tokens = tuple(t for t in SPECIAL_TOKENS if t not in LATENT_TOKENS)
  tokenizer = train_tokenizer(["the square moves left then right"] * 4, str(root / "tok"), vocab_size=300,
                              special_tokens=base_tokens)
  ids = {k: tokenizer.convert_tokens_to_ids(t) for k, t in
         [("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
          ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")]}
  model, _ = hfx.build_hf_model(text={"vocab_size": len(tokenizer)}, **ids)
  hf_dir = root / "hf"
  model.save_pretrained(hf_dir)
  tokenizer.save_pretrained(hf_dir)
  return hf_dir, len(tokenizer)


def _experiment(hf_dir, **model):
  return parse({"model": {"init_from": str(hf_dir), **model}, "latent": {"mode": "videolatent", "num_heads": 4}})


def test_latent_tokens_added_and_exported_round_trip(plain_hf_dir, tmp_path):
  hf_dir, vocab = plain_hf_dir
  config = _experiment(hf_dir)
  model_config, params, tokenizer = load_pretrained(config)
  assert model_config.llm.vocab_size == vocab + 3  # the tokenizer filled the table: it grew by 3 rows
  assert tokenizer.convert_tokens_to_ids("<|latent_start|>") == model_config.latent_start_token_id == vocab
  assert model_config.latent is not None
  _, state, _ = build_model(config, model_config, 0, pretrained=params)
  trained = jax.tree.map(np.asarray, nnx.to_pure_dict(state))
  # New embedding rows start at the mean of the old ones; old rows are untouched.
  embed = trained["llm"]["embed_tokens"]["embedding"]
  np.testing.assert_array_equal(embed[:vocab], params["llm"]["embed_tokens"]["embedding"][:vocab])
  np.testing.assert_allclose(embed[vocab], embed[:vocab].mean(0), rtol=1e-5, atol=1e-6)

  tok_dir = tmp_path / "tok"
  tokenizer.save_pretrained(tok_dir)
  ckpt, exported, back = tmp_path / "ckpt", tmp_path / "exported", tmp_path / "back"
  save_checkpoint(ckpt, model_config, trained, tokenizer_dir=tok_dir)
  cli = [sys.executable, "-m", "vlatent_jax.convert"]
  subprocess.run(cli + ["jax-to-hf", "--ckpt", str(ckpt), "--out", str(exported)], check=True)
  subprocess.run(cli + ["hf-to-jax", "--hf-dir", str(exported), "--out", str(back)], check=True)

  assert (exported / "latent_injection.safetensors").is_file()
  saved = json.loads((exported / "config.json").read_text())["vlatent"]
  assert saved["latent_start_token_id"] == vocab and saved["latent_module"]["num_heads"] == 4
  restored_config, restored, _ = load_checkpoint(back)
  assert restored_config == model_config
  a, b = flatten(trained), flatten(restored)
  assert a.keys() == b.keys() and any(k.startswith("latent/") for k in a)
  for key in a:
    assert a[key].dtype == b[key].dtype and a[key].tobytes() == b[key].tobytes(), key
  from transformers import AutoTokenizer, Qwen2_5_VLForConditionalGeneration
  assert AutoTokenizer.from_pretrained(exported).convert_tokens_to_ids("<|latent_end|>") == vocab + 1
  # transformers still loads it as a plain Qwen2.5-VL with the grown vocabulary, nothing missing or unexpected.
  hf, info = Qwen2_5_VLForConditionalGeneration.from_pretrained(exported, output_loading_info=True)
  assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys"))
  assert hf.get_input_embeddings().weight.shape[0] == vocab + 3
  # And reading the exported directory directly gives the same tree.
  _, direct, _ = read_hf(exported)
  assert flatten(direct).keys() == a.keys()


def test_latent_mode_without_tokens_fails_before_compute(plain_hf_dir):
  hf_dir, _ = plain_hf_dir
  with pytest.raises(ConfigError, match=r"latent\.mode"):
    load_pretrained(_experiment(hf_dir, add_latent_tokens=False))
