"""Every file in configs/ loads and validates; bad values fail naming the key before any compute."""

import pathlib

import pytest

from vlatent_jax.config import ConfigError, load_config_file, parse

CONFIG_DIR = pathlib.Path(__file__).resolve().parent.parent / "configs"
CONFIG_FILES = sorted(CONFIG_DIR.glob("*.py"))


def _load(path):
  return load_config_file(str(path))


def test_configs_exist():
  assert {p.stem for p in CONFIG_FILES} >= {"tiny", "qwen2_5_vl_3b", "qwen2_5_vl_7b"}


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_config_parses(path):
  config = parse(_load(path))
  assert config.train.steps > 0 and config.checkpoint.every_steps > 0
  assert config.latent.mode in ("sft", "continuous_thought", "videolatent")


@pytest.mark.parametrize("key,value,message", [
    ("latent.mode", "r1", "latent.mode"),
    ("latent.num_latents", -1, "latent.num_latents"),
    ("train.batch_size", 0, "train.batch_size"),
    ("mesh.fsdp", 0, "mesh"),
    ("optim.learning_rate", -1.0, "optim.learning_rate"),
])
def test_bad_values_name_the_key(key, value, message):
  config = _load(CONFIG_DIR / "tiny.py")
  section, field = key.split(".")
  config[section][field] = value
  with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
    parse(config)


def test_wrong_type_is_named():
  values = _load(CONFIG_DIR / "tiny.py").to_dict()
  values["train"]["steps"] = "many"  # ml_collections itself refuses this on a ConfigDict; plain dicts reach us
  with pytest.raises(ConfigError, match=r"train\.steps"):
    parse(values)


def test_unknown_key_is_named():
  config = _load(CONFIG_DIR / "tiny.py")
  config.train.stepz = 3
  with pytest.raises(ConfigError, match=r"train\.stepz"):
    parse(config)
