"""Gradient flow through time: the profile summaries, the labels, and hooks only when sampled."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnlab.diagnostics.gradient_flow import (
    LABEL_DECADES,
    GradientFlow,
    _end_aligned_step_norms,
    mean_log_profile,
    stack_label,
    summarize_profile,
)


def _decaying(steps: int, decades_per_step: float) -> np.ndarray:
    """‖∂L/∂x_t‖ that shrinks by `decades_per_step` per step back from the last step."""
    back = np.arange(steps)[::-1]
    return 10.0 ** (-decades_per_step * back)


def test_fitted_rate_and_first_over_last_ratio_read_a_geometric_decay():
    s = summarize_profile(_decaying(100, 0.05))
    assert s.log10_growth_per_step == pytest.approx(-0.05)
    assert s.log10_first_over_last == pytest.approx(-0.05 * 99)
    assert s.span == pytest.approx(-4.95)


def test_label_thresholds_are_six_decades_over_the_sequence():
    assert LABEL_DECADES == 6.0
    assert summarize_profile(_decaying(100, 0.08)).label == -1  # 10^-7.9 at the first step
    assert summarize_profile(_decaying(100, 0.05)).label == 0  # 10^-4.95: stable
    assert summarize_profile(_decaying(100, -0.08)).label == 1  # grows going back
    assert summarize_profile(np.ones(100)).label == 0


def test_norms_that_underflowed_to_zero_count_as_vanishing():
    profile = _decaying(100, 0.1)
    profile[:40] = 0.0  # float32 underflow (or flushed denormals) at early steps
    s = summarize_profile(profile)
    assert s.label == -1
    assert math.isfinite(s.log10_first_over_last)


def test_a_non_finite_gradient_is_exploding():
    profile = np.ones(50)
    profile[3] = np.inf
    assert summarize_profile(profile).label == 1


def test_stack_label_any_exploding_then_any_vanishing():
    assert stack_label([0, -1, 1]) == 1
    assert stack_label([0, -1]) == -1
    assert stack_label([0, 0]) == 0


def test_profiles_of_different_lengths_average_aligned_at_their_ends():
    mean = mean_log_profile([np.array([1.0, 10.0, 100.0]), np.array([1000.0, 100.0])])
    assert mean[0] == pytest.approx(1.0)  # only the longer profile reaches that far back
    assert mean[1] == pytest.approx(100.0)  # geometric mean of 10 and 1000
    assert mean[2] == pytest.approx(100.0)


def test_variable_lengths_are_aligned_at_each_sequences_last_step():
    grad = torch.zeros(2, 4, 3)
    grad[0, :4] = 1.0  # length 4: every step
    grad[1, :2] = 2.0  # length 2: steps 0..1, then padding
    norms = _end_aligned_step_norms(grad, torch.tensor([4, 2]))
    # the last two positions hold both sequences' last two steps
    assert norms[-1].item() == pytest.approx(math.sqrt(3 + 12))
    assert norms[0].item() == pytest.approx(math.sqrt(3))  # only the long sequence
    fixed = _end_aligned_step_norms(grad, None)
    assert fixed[-1].item() == pytest.approx(math.sqrt(3))  # unaligned: padding counts


def test_sampling_every_n_steps_and_the_first_step_of_each_epoch():
    class Trainer:
        global_step = 0

    gf = GradientFlow(every_n_steps=3)
    t = Trainer()
    sampled = []
    for step, batch_idx in enumerate([0, 1, 2, 3, 0, 1, 2, 3]):
        t.global_step = step
        if gf.should_sample(t, batch_idx):  # type: ignore[arg-type]
            sampled.append(step)
    assert sampled == [0, 3, 4, 6]


def test_every_n_steps_must_be_positive():
    with pytest.raises(ValueError, match="every_n_steps"):
        GradientFlow(every_n_steps=0)
