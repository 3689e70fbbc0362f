"""Report analysis without a sweep: importances, the init x clipping grid, best and worst."""

from __future__ import annotations

import random
from pathlib import Path

import optuna
import pytest

from rnnlab.report import analysis
from rnnlab.report.data import SweepReport, TrialRow, real_value
from rnnlab.sweep.state import SweepRecord

DISTS = {
    "model.init.recurrent": optuna.distributions.CategoricalDistribution(["default", "orthogonal"]),
    "train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True),
    "train.clip.mode": optuna.distributions.CategoricalDistribution(["none", "norm"]),
    "train.clip.threshold": optuna.distributions.FloatDistribution(0.01, 100.0, log=True),
}


def _report(rows: list[TrialRow]) -> SweepReport:
    record = SweepRecord(
        name="s", folder="/nowhere", status="finished", tracking_uri="sqlite:///x.db",
        experiment="rnnlab", experiment_id="1", parent_run_id="p", metric="val/mse",
        mode="min", trials=len(rows),
    )  # fmt: skip
    return SweepReport(record, Path("/nowhere"), rows, DISTS)


def _rows(n: int, diverged: int = 0) -> list[TrialRow]:
    rng = random.Random(0)
    rows = []
    for i in range(n + diverged):
        params = {
            "model.init.recurrent": rng.choice(["default", "orthogonal"]),
            "train.lr": 10 ** rng.uniform(-4, -1),
            "train.clip.mode": rng.choice(["none", "norm"]),
        }
        if params["train.clip.mode"] == "norm":
            params["train.clip.threshold"] = 10 ** rng.uniform(-2, 2)
        value = (
            0.1 + (0.05 if params["model.init.recurrent"] == "default" else 0) + rng.random() * 0.01
        )
        outcome = "completed"
        if i >= n:
            outcome, value = "diverged", None
        rows.append(
            TrialRow(number=i, run_id=f"run{i}", outcome=outcome, value=value, params=params)
        )
    return rows


def test_diverged_penalty_is_not_a_real_value():
    assert real_value(1e30) is None and real_value(-1e30) is None
    assert real_value(float("nan")) is None
    assert real_value(0.25) == 0.25


def test_importances_keep_the_conditional_clip_threshold_and_skip_diverged_trials():
    report = _report(_rows(16, diverged=4))
    imp = analysis.importances(report)
    assert imp.trials == 16
    assert "train.clip.threshold" in imp.values  # PED-ANOVA keeps conditional params
    assert sum(imp.values.values()) == pytest.approx(1.0)
    assert imp.values["model.init.recurrent"] > 0.05  # the only real effect is seen


def test_too_few_trials_for_importances_says_so():
    imp = analysis.importances(_report(_rows(2, diverged=3)))
    assert imp.values == {} and "at least 3" in imp.note


def test_clipping_is_binned_off_low_high_around_the_median_threshold():
    rows = _rows(12)
    report = _report(rows)
    grid = analysis.init_clip_grid(report)
    assert grid.bins[0] == "off"
    assert len(grid.bins) == 3 and grid.bins[1].startswith("≤") and grid.bins[2].startswith(">")
    assert sum(grid.counts.values()) == 12


def test_best_and_worst_follow_the_metric_direction():
    report = _report(_rows(6, diverged=1))
    best, worst = analysis.best_and_worst(report)
    values = [r.value for r in report.trials if r.value is not None]
    assert best.value == min(values) and worst.value == max(values)
    assert len(analysis.diverged_trials(report)) == 1


def test_page_lists_what_diverged_and_links_its_images_relatively(tmp_path):
    from rnnlab.report import summary_text, write_report

    rows = _rows(8, diverged=2)
    for row in rows:
        row.run_id = ""  # no MLflow run behind them: nothing to download
    rows[-1].tags = {"rnnlab.divergence.step": "14", "rnnlab.divergence.blowup_layer": "head"}
    report = _report(rows)
    report.folder = tmp_path
    index = write_report(tmp_path, top=3, report=report, log_to_run=False)
    page = index.read_text()
    assert "Settings that diverged (2)" in page and "<td>head</td>" in page
    for name in ("importance.png", "parallel_coordinates.png", "init_clip_heatmap.png"):
        assert f'<img src="{name}"' in page and (index.parent / name).stat().st_size > 5000
    text = summary_text(report)
    assert text.startswith("sweep s (finished): 8 completed, 2 diverged")
    assert "importance (8 trials)" in text and "diverged (2)" in text
