"""benchmarks/overhead.py runs end to end and reports its ratios (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "overhead.py"


def _load_overhead():
    spec = importlib.util.spec_from_file_location("rnnlab_bench_overhead", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_overhead_benchmark_quick_run_prints_every_ratio_line(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # nothing may land in the working directory
    overhead = _load_overhead()

    assert overhead.main(["--quick", "--workloads", "parity", "--threads", "1"]) == 0

    out = capsys.readouterr().out
    assert "ratio rnnlab/bare Lightning:" in out
    assert "ratio rnnlab/hand loop:" in out
    assert "ratio rnnlab/Lightning+ckpt:" in out
    assert "rnnlab set-up (worst run):" in out
    for label in ("hand loop", "bare Lightning", "Lightning+its ckpt", "rnnlab fit+MLflow"):
        assert label in out
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_every_ablation_of_the_overhead_benchmark_runs(capsys, monkeypatch, tmp_path):
    """Each ablation swaps one piece of fit (a logger, a checkpoint IO); one that no longer
    fits fit's signature would otherwise only surface when someone needs the figures."""
    monkeypatch.chdir(tmp_path)
    overhead = _load_overhead()

    args = ["--quick", "--workloads", "parity", "--threads", "1", "--ablations"]
    assert overhead.main(args) == 0

    out = capsys.readouterr().out
    for way in overhead.ABLATIONS:
        assert f"ablation {way}/Lightning:" in out, way
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_in_fit_attribution_times_the_pieces_of_both_ways(tmp_path):
    """A subprocess: the script rewires Lightning's dispatch for the whole process."""
    import subprocess

    script = SCRIPT.with_name("in_fit_attribution.py")
    proc = subprocess.run(
        [sys.executable, str(script), "--epochs", "2", "--repeats", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {
        line[:52].strip(): line[52:].split()
        for line in proc.stdout.splitlines()
        if len(line) > 52 and line[52:].split()
    }
    lightning, rnnlab, _ = map(float, rows["training_step"])
    assert lightning > 0 and rnnlab > 0
    assert float(rows["checkpoint:   held copy"][1]) > 0  # rnnlab holds its checkpoints
    assert float(rows["checkpoint:   held copy"][0]) == 0  # bare Lightning has none
    assert "callback dispatch (all hooks)" in rows
    assert list(tmp_path.iterdir()) == []
