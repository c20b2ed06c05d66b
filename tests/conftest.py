"""Suite-wide settings shared by every test module."""

import jax
import pytest


@pytest.fixture(scope="session", autouse=True)
def full_float32_matmuls():
  """Every test runs its JAX computations with full float32 matmuls.

  CPU already computes float32 dots in float32, but GPU (TF32) and TPU (bfloat16 passes) do not by
  default, and the parity and naive-reference comparisons hold float32 tolerances. Session scope, so
  module-scoped fixtures that compute (parity builds, cached training runs) are covered too. The
  setting is thread-local: a test that computes on its own threads must enter it there.
  """
  with jax.default_matmul_precision("highest"):
    yield
