"""The run plots are PNGs with something in them, also for degenerate histories."""

from __future__ import annotations

import numpy as np

from rnnlab.diagnostics.clipping import ClippingTelemetry, quantiles
from rnnlab.diagnostics.gradient_flow import GradientSample
from rnnlab.diagnostics.plots import plot_clipping, plot_gradient_flow, plot_loss

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path) -> bool:
    return path is not None and path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 5000


def test_gradient_flow_heatmap_per_layer_with_underflow_and_varying_lengths(tmp_path):
    vanishing = 10.0 ** -np.arange(30)[::-1]
    vanishing[:5] = 0.0  # underflow: drawn grey, not an error
    samples = [
        GradientSample(step=s, epoch=0, profiles=[vanishing, np.ones(30 - s)], weight_norms=[1, 2])
        for s in (0, 5, 10)
    ]
    assert _is_png(plot_gradient_flow(samples, "rnn · init default", tmp_path / "gf.png"))
    assert plot_gradient_flow([], "x", tmp_path / "none.png") is None


def test_clipping_plot_marks_non_finite_steps(tmp_path):
    telemetry = ClippingTelemetry(threshold=1.0, mode="norm")
    h = telemetry.history
    h.steps.append(np.arange(6))
    h.before.append(np.array([0.5, 2.0, 3.0, np.inf, 1.5, 0.2]))
    h.after.append(np.array([0.5, 1.0, 1.0, np.nan, 1.0, 0.2]))
    h.clipped.append(np.array([False, True, True, True, True, False]))
    assert _is_png(plot_clipping(telemetry, "t", tmp_path / "clip.png"))


def test_loss_plot_with_baseline(tmp_path):
    history = [{"epoch": e, "train/loss": 1 / (e + 1), "val/loss": 1.2 / (e + 1)} for e in range(4)]
    assert _is_png(plot_loss(history, "t", tmp_path / "loss.png", {"(mse)": 0.167}))
    assert plot_loss([], "t", tmp_path / "none.png") is None


def test_quantiles_ignore_non_finite_norms():
    q = quantiles(np.array([1.0, 2.0, 3.0, np.inf, np.nan]), "clip/norm_before")
    assert q == {
        "clip/norm_before_p50": 2.0,
        "clip/norm_before_p90": 2.8,
        "clip/norm_before_max": 3.0,
    }
    assert quantiles(np.array([np.nan]), "x") == {}
