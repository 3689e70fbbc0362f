"""The per-epoch gradient statistics a run logs, from the norms of its steps."""

from __future__ import annotations

import math

import pytest
import torch
from tests.unit._specs import ADDING, bare_module


def test_norm_statistics_skip_non_finite_steps_and_clip_fraction_counts_every_step() -> None:
    module = bare_module(ADDING)
    norms = [0.5, float("inf"), 2.0, float("nan"), 1.25]
    clipped = [False, True, True, True, False]
    module._grad_norms = [torch.tensor(v) for v in norms]
    module._clipped = [torch.tensor(c) for c in clipped]
    summary = module._gradient_summary()
    assert summary["train/clip_fraction"] == pytest.approx(3 / 5)
    assert summary["train/grad_norm"] == pytest.approx((0.5 + 2.0 + 1.25) / 3)
    assert summary["train/grad_norm_max"] == 2.0
    assert module.last_grad_norm == 1.25  # the last finite step's norm


def test_an_epoch_of_only_non_finite_norms_logs_the_clip_fraction_alone() -> None:
    module = bare_module(ADDING)
    module._grad_norms = [torch.tensor(math.inf), torch.tensor(math.nan)]
    module._clipped = [torch.tensor(True), torch.tensor(False)]
    assert module._gradient_summary() == {"train/clip_fraction": 0.5}
    assert module.last_grad_norm is None
    module._grad_norms, module._clipped = [], []
    assert module._gradient_summary() == {}
