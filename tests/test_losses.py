"""Loss functions against values worked out by hand."""

import math

import numpy as np
import pytest

from vlatent_jax import losses


def test_answer_loss_hand_values():
  # Row 0: uniform over 3 classes -> CE = ln 3. Row 1: probs (1/4, 2/4, 1/4), target 1 -> CE = ln 2.
  logits = np.log(np.array([[[1.0, 1.0, 1.0], [1.0, 2.0, 1.0]]]))
  targets = np.array([[0, 1]])
  assert losses.answer_loss(logits, targets, np.array([[1, 1]])) == pytest.approx((math.log(3) + math.log(2)) / 2,
                                                                                   rel=1e-6)
  assert losses.answer_loss(logits, targets, np.array([[1, 0]])) == pytest.approx(math.log(3), rel=1e-6)
  assert float(losses.answer_loss(logits, targets, np.array([[0, 0]]))) == 0.0


def test_latent_alignment_loss_hand_values():
  pred = np.array([[[1.0, 0.0], [0.0, 1.0]]])
  target = np.array([[[1.0, 0.0], [1.0, 1.0]]])
  # cos = 1 and 1/sqrt(2): mean of (0, 1 - 1/sqrt(2)).
  expected = (1 - 1 / math.sqrt(2)) / 2
  assert losses.latent_alignment_loss(pred, target, np.ones((1, 2))) == pytest.approx(expected, rel=1e-6)
  assert losses.latent_alignment_loss(3.0 * pred, target, np.ones((1, 2))) == pytest.approx(expected, rel=1e-6)
  assert losses.latent_alignment_loss(pred, target, np.array([[1, 0]])) == pytest.approx(0.0, abs=1e-7)
  # Opposite vectors give the maximum, 2.
  assert losses.latent_alignment_loss(pred, -pred, np.ones((1, 2))) == pytest.approx(2.0, rel=1e-6)


def test_latent_alignment_mse_hand_values():
  pred = np.array([[[1.0, 3.0]]])
  target = np.array([[[0.0, 1.0]]])
  assert losses.latent_alignment_mse_loss(pred, target, np.ones((1, 1))) == pytest.approx((1 + 4) / 2)


def test_trajectory_kl_hand_values():
  teacher = np.array([[[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]]])
  student = np.array([[[0.25, 0.25, 0.5], [1.0, 0.0, 0.0]]])
  # Latent 0: 2 * 0.5 * ln(0.5 / 0.25) = ln 2; latent 1 matches its teacher: 0.
  assert losses.trajectory_kl_loss(student, teacher, np.ones((1, 2))) == pytest.approx(math.log(2) / 2, rel=1e-6)
  assert losses.trajectory_kl_loss(student, teacher, np.array([[1, 0]])) == pytest.approx(math.log(2), rel=1e-6)
  # The teacher's mass where the student has none costs a large, finite amount (floor 1e-12).
  big = float(losses.trajectory_kl_loss(teacher[:, 1:], teacher[:, :1], np.ones((1, 1))))
  assert 10 < big < 30


def test_latent_diversity_loss_hand_values():
  collapsed = np.array([[1.0, 0.0], [2.0, 0.0]])     # G - I = [[0,1],[1,0]] -> 2 / 2^2
  orthogonal = np.array([[1.0, 0.0], [0.0, 5.0]])    # G = I -> 0
  sixty = np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])  # cos = 0.5 -> 2 * 0.25 / 4
  ones = np.ones((1, 2))
  assert losses.latent_diversity_loss(collapsed[None], ones) == pytest.approx(0.5, rel=1e-6)
  assert losses.latent_diversity_loss(orthogonal[None], ones) == pytest.approx(0.0, abs=1e-7)
  assert losses.latent_diversity_loss(sixty[None], ones) == pytest.approx(0.125, rel=1e-6)
  # Batch mean, and a masked third latent changes nothing (K counts unmasked latents only).
  batch = np.stack([collapsed, orthogonal])
  assert losses.latent_diversity_loss(batch, np.ones((2, 2))) == pytest.approx(0.25, rel=1e-6)
  padded = np.concatenate([collapsed, [[-7.0, 3.0]]])[None]
  assert losses.latent_diversity_loss(padded, np.array([[1, 1, 0]])) == pytest.approx(0.5, rel=1e-6)
  # An example with no latents is left out of the batch mean.
  assert losses.latent_diversity_loss(batch, np.array([[1, 1], [0, 0]])) == pytest.approx(0.5, rel=1e-6)


def test_hinge_and_pairwise_cosine():
  sixty = np.array([[[1.0, 0.0], [0.5, math.sqrt(3) / 2]]])
  ones = np.ones((1, 2))
  assert losses.latent_diversity_hinge_loss(sixty, ones, margin=0.2) == pytest.approx(0.3, rel=1e-6)
  assert losses.latent_diversity_hinge_loss(sixty, ones, margin=0.6) == pytest.approx(0.0, abs=1e-7)
  assert losses.mean_pairwise_cosine(sixty, ones) == pytest.approx(0.5, rel=1e-6)
