"""`task.eval_lengths`: a trained run tested at other lengths records metric-vs-length."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.conftest import train_in_process


@pytest.fixture(scope="module")
def adding_with_lengths(tmp_path_factory):
    """A short adding run at T=20 tested at T=10, 20 and 40, tracked in its own store."""
    from mlflow.tracking import MlflowClient

    result, uri = train_in_process(
        tmp_path_factory.mktemp("lengths"),
        "task=adding",
        "task.seq_len=20",
        "task.train_size=128",
        "task.val_size=32",
        "task.test_size=32",
        "model.hidden_size=8",
        "train.max_epochs=1",
        "task.eval_lengths=[40,10]",
    )
    return result, MlflowClient(tracking_uri=uri)


def test_eval_lengths_log_metric_vs_length_with_the_length_as_step(adding_with_lengths) -> None:
    result, client = adding_with_lengths
    run_id = result.run.run_id
    history = client.get_metric_history(run_id, "by_length/mse")
    assert sorted(m.step for m in history) == [10, 20, 40]
    by_step = {m.step: m.value for m in history}
    # At the training length the series is the test metric itself.
    assert by_step[20] == pytest.approx(result.fit.metrics["test/mse"])
    # Other lengths are other test sets: their errors differ.
    assert len({round(v, 6) for v in by_step.values()}) == 3


def test_eval_lengths_keep_a_table_and_a_plot_with_the_run(adding_with_lengths, tmp_path) -> None:
    result, client = adding_with_lengths
    run_id = result.run.run_id
    local = client.download_artifacts(run_id, "eval/by_length.json", str(tmp_path))
    table = json.loads(Path(local).read_text())
    assert table["trained_at"] == 20
    assert sorted(int(k) for k in table["by_length"]) == [10, 20, 40]
    plots = [a.path for a in client.list_artifacts(run_id, "plots")]
    assert "plots/metric_by_length.png" in plots
    png = client.download_artifacts(run_id, "plots/metric_by_length.png", str(tmp_path))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
