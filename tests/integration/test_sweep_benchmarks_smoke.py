"""The sweep benchmarks (issue 3, item 11) run end to end on tiny settings and print their figures.

Each script runs as a user runs it (`python benchmarks/NAME.py --quick`, a subprocess) on
real Ray, Optuna and MLflow. No timing is asserted: the figures depend on the machine.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import REPO_ROOT, cli_environment

BENCHMARKS = REPO_ROOT / "benchmarks"
NUMBER = r"\d+\.\d+"


def _run_quick(script: str, cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--quick"],
        cwd=cwd,
        env=cli_environment(),
        capture_output=True,
        text=True,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.mark.slow
def test_bookkeeping_benchmark_reports_ratio_start_up_and_set_up_separately(tmp_path):
    out = _run_quick("sweep_bookkeeping.py", tmp_path)
    assert "outcomes: 4 completed" in out
    assert re.search(rf"^ratio search wall / ideal: +{NUMBER}", out, re.M), out
    assert re.search(rf"^ratio without worker start-up: +{NUMBER}", out, re.M), out
    assert re.search(rf"^fixed set-up .* {NUMBER} s$", out, re.M), out
    assert re.search(r"^ideal = sum of trial times / 2 = ", out, re.M), out
    # 4 trials, 2 at a time, workers reused: two worker processes ran all four
    assert "worker processes: 2 ran trials" in out
    assert "load (1/5/15 min):" in out
    # the sweep ran in its own temporary folder and left nothing where it was started
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_pruning_benchmark_compares_epochs_and_best_with_and_without_asha(tmp_path):
    out = _run_quick("sweep_pruning.py", tmp_path)
    assert "same configurations in both searches: yes" in out
    assert re.search(r"^none +4 ", out, re.M), out
    assert re.search(r"^asha +4 ", out, re.M), out
    assert re.search(rf"^ratio epochs asha/none: {NUMBER}", out, re.M), out
    assert re.search(rf"^ratio best asha/none: +{NUMBER}", out, re.M), out
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_trial_checkpoint_benchmark_prints_the_best_copy_against_the_trial_checkpoint(tmp_path):
    out = _run_quick("trial_checkpoint.py", tmp_path)
    assert re.search(rf"best copy / trial checkpoint = {NUMBER}x, / epoch = {NUMBER}x$", out, re.M)
    assert not list(tmp_path.iterdir())
