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
