"""After a tiny `rnnlab sweep` in an empty folder: `rnnlab sweeps` lists it with the right counts,
`rnnlab sweeps show NAME` ranks its trials, and its best trial can be evaluated with `rnnlab eval`.
"""

from __future__ import annotations

import io
import json
import re

import pytest
from tests.integration._sweeps import TINY_PROBLEM

# Two trials of two epochs on a 10-step adding problem; no pruning, so every trial completes.
TINY_SWEEP = [
    *TINY_PROBLEM,
    "diagnostics.plots=false",
    "sweep.trials=2",
    "sweep.scheduler=none",
    "sweep.final_seeds=0",
    "sweep.name=tiny",
]


@pytest.fixture(scope="module")
def swept(run_cli, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweeps_cli")
    assert list(folder.iterdir()) == []
    result = run_cli(folder, "sweep", *TINY_SWEEP, timeout=900)
    assert result.rc == 0, result.stdout[-3000:] + result.stderr[-3000:]
    state = json.loads((folder / "rnnlab-sweeps" / "tiny" / "sweep.json").read_text())
    assert state["summary"]["counts"] == {"completed": 2}, result.stdout[-3000:]
    return folder, state


@pytest.mark.slow
def test_sweeps_lists_the_sweep_with_its_status_trial_counts_and_best(swept, run_cli) -> None:
    folder, state = swept
    rc, out, err = run_cli(folder, "sweeps")
    assert rc == 0, err
    header, *rows = out.strip().splitlines()
    assert header.split() == ["NAME", "STATUS", "TRIALS", "BEST", "METRIC", "FOLDER"]
    assert len(rows) == 1
    row = rows[0]
    assert row.startswith("tiny ") and " finished " in row
    assert "2 completed" in row
    assert f"{state['summary']['best_value']:.4g}" in row
    assert "val/mse" in row and str(folder / "rnnlab-sweeps" / "tiny") in row


@pytest.mark.slow
def test_sweeps_show_prints_the_trials_ranked_by_the_metric(swept, run_cli) -> None:
    folder, state = swept
    rc, out, err = run_cli(folder, "sweeps", "show", "tiny")
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "sweep tiny (finished), 2 trials, metric val/mse (min)"
    header = lines[1].split()
    assert header[:4] == ["#", "val/mse", "outcome", "run_id"]
    assert {"recurrent", "input", "dropout"} <= set(header)
    table = [line.split() for line in lines[2:]]
    assert [r[0] for r in table] == ["1", "2"]
    values = [float(r[1]) for r in table]
    assert values == sorted(values)
    assert all(r[2] == "completed" for r in table)
    assert state["summary"]["best_run_id"].startswith(table[0][3])


@pytest.mark.slow
def test_eval_of_the_sweeps_best_trial_prints_and_logs_test_metrics(swept) -> None:
    from mlflow.tracking import MlflowClient

    from rnnlab.evaluation import evaluate_run

    folder, state = swept
    best = state["summary"]["best_run_id"]
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    out = io.StringIO()
    metrics = evaluate_run(best, [], uri, stream=out)
    assert re.search(r"eval/test/mse\s+\d", out.getvalue())
    run = MlflowClient(tracking_uri=uri).get_run(best)
    assert run.data.tags["rnnlab.sweep"] == "tiny"
    assert run.data.metrics["eval/test/mse"] == pytest.approx(metrics["eval/test/mse"])
