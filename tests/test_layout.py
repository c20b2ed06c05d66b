"""docs/layout.md: importing one row's modules in a fresh interpreter pulls in nothing above that row.

Two checks per row. The vlatent_jax modules loaded must all be the row's own or ones it may know.
Third-party packages are checked by who imports them: a vlatent_jax module must not import a package
its row does not know; a package pulled in by an allowed dependency is that dependency's business
(flax.nnx imports optax itself, grain imports jax and orbax).
"""

import functools
import json
import subprocess
import sys

import pytest

DATA = [f"vlatent_jax.data.{m}" for m in ("collate", "curriculum", "embedded", "manifest", "pipeline", "prepare",
                                          "preprocess", "pretrain_corpus", "processor", "prompts", "records",
                                          "render", "synthetic", "tokenizer", "video")]
ROW1 = ["vlatent_jax.sharding", "vlatent_jax.errors"]
MODELS = [f"vlatent_jax.models.{m}" for m in ("config", "layers", "rope", "vision", "decoder", "latent", "vlm",
                                              "inputs")]
ROW3 = ["vlatent_jax.rollout", "vlatent_jax.targets", "vlatent_jax.losses", "vlatent_jax.checkpoint",
        "vlatent_jax.convert.hf", "vlatent_jax.convert.hf_config", "vlatent_jax.convert.keys"]
ROW4 = ["vlatent_jax.inference", "vlatent_jax.decoding"]
ROW5 = ([f"vlatent_jax.eval.{m}" for m in ("harness", "readers", "report", "scoring")] + ["vlatent_jax.predict"]
        + [f"vlatent_jax.train.{m}" for m in ("batch", "checkpoints", "embedded_data", "export", "loop", "observe",
                                              "optim", "setup", "step")])
NOT_DATA = ("jax", "flax", "optax", "orbax", "transformers", "torch")
TRAINER = ("optax", "grain", "orbax", "transformers", "torch")
NOT_DATA_OR_HF = ("grain", "transformers", "torch")

# name: (modules imported, vlatent_jax modules they may load, third-party packages they must not import)
ROWS = {
    "0-data": (DATA, ["vlatent_jax.data"], NOT_DATA),
    "1-sharding": (ROW1, ROW1, ("flax",) + TRAINER),
    "2-models": (MODELS, ["vlatent_jax.models"] + ROW1, TRAINER),
    # convert/ writes the model checkpoint format (orbax allowed from here up)
    "3-rollout": (ROW3, ROW3 + ["vlatent_jax.convert", "vlatent_jax.models"] + ROW1, NOT_DATA_OR_HF),
    "4-inference": (ROW4, ROW4 + ROW3 + ["vlatent_jax.convert", "vlatent_jax.models"] + ROW1, NOT_DATA_OR_HF),
    # Not in layout.md's table: vlatent_jax.config, the experiment config (train's), and distributed.py,
    # multi-host start-up (jax only). transformers (tokenizers) only inside functions.
    "5-train": (ROW5, ROW5 + ["vlatent_jax.eval", "vlatent_jax.train", "vlatent_jax.config", "vlatent_jax.distributed",
                              "vlatent_jax.data"] + ROW4 + ROW3 + ["vlatent_jax.convert", "vlatent_jax.models"] + ROW1,
                ("transformers", "torch")),
    # Row 6 (experiment, demo, CLIs) has nothing above it.
}

# Imports that still break a row (left to their files' owners); each has a strict xfail below, so its
# entry must go when the import does.
KNOWN: dict[tuple[str, str], str] = {}

PROBE = r"""
import builtins, importlib, json, sys
edges = set()
real_import = builtins.__import__

def spy(name, globals=None, locals=None, fromlist=(), level=0):
  importer = (globals or {}).get("__name__") or ""
  if level == 0 and importer.startswith("vlatent_jax"):
    edges.add((importer, name.partition(".")[0]))
  return real_import(name, globals, locals, fromlist, level)

builtins.__import__ = spy
for module in sys.argv[1:]:
  importlib.import_module(module)
builtins.__import__ = real_import
print(json.dumps({"modules": sorted(sys.modules), "edges": sorted(edges)}))
"""


@functools.cache
def _probe(modules: tuple[str, ...]) -> dict:
  """Imports `modules` in a fresh interpreter: every module loaded, and (vlatent_jax importer, package) edges."""
  done = subprocess.run([sys.executable, "-c", PROBE, *modules], capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  return json.loads(done.stdout.strip().splitlines()[-1])


def _within(name: str, prefixes) -> bool:
  return name == "vlatent_jax" or any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.fixture(scope="module", params=sorted(ROWS))
def row(request):
  modules, allowed, forbidden = ROWS[request.param]
  return request.param, _probe(tuple(modules)), allowed, forbidden


def test_a_row_loads_no_module_above_it(row):
  name, probe, allowed, _ = row
  above = [m for m in probe["modules"] if m.startswith("vlatent_jax") and not _within(m, allowed)]
  assert not above, f"row {name} imports modules above it: {above}"


def test_a_row_imports_no_package_it_does_not_know(row):
  name, probe, _, forbidden = row
  bad = [(importer, package) for importer, package in probe["edges"]
         if package in forbidden and (importer, package) not in KNOWN]
  assert not bad, f"row {name}: (module, package) imports its row does not know: {bad}"


def test_data_imports_no_flax():
  assert "flax" not in _probe(tuple(DATA))["modules"]


def test_the_checks_can_fail():
  """Row 5's imports, held to data's row, fail both checks: it loads models/ and train/step.py imports optax."""
  probe = _probe(tuple(ROWS["5-train"][0]))
  assert not all(_within(m, ROWS["0-data"][1]) for m in probe["modules"] if m.startswith("vlatent_jax"))
  assert ["vlatent_jax.train.step", "optax"] in probe["edges"]
