"""`rnnlab eval RUN_ID`: a trained run's checkpoint scored again and logged to the same run."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from tests.conftest import train_in_process

from rnnlab.config import ConfigError
from rnnlab.evaluation import evaluate_run


def _eval_wired() -> bool:
    import argparse

    from rnnlab.cli import _parser

    return any(
        "eval" in action.choices
        for action in _parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )


@pytest.fixture(scope="module")
def trained(run_cli, open_store, tiny, tmp_path_factory):
    """One `rnnlab train` run (tanh RNN, adding problem at T=30, two epochs) to evaluate."""
    folder = tmp_path_factory.mktemp("eval")
    result = run_cli(folder, "train", *tiny, "model=rnn", "train.max_epochs=2")
    assert result.rc == 0, result.stderr
    store = open_store(folder)
    return store, store.only_run()


def _eval(store, run_id: str, *overrides: str) -> tuple[dict[str, float], str]:
    out = io.StringIO()
    metrics = evaluate_run(run_id, list(overrides), store.uri, stream=out)
    return metrics, out.getvalue()


def test_eval_scores_the_best_checkpoint_on_the_test_split_and_logs_to_the_same_run(
    trained, tmp_path
) -> None:
    store, run = trained
    run_id = run.info.run_id
    metrics, printed = _eval(store, run_id)
    assert set(metrics) == {"eval/test/loss", "eval/test/mse"}
    # Same weights (best), same test set, whole split: what training's own test measured.
    assert metrics["eval/test/mse"] == pytest.approx(run.data.metrics["test/mse"], rel=1e-5)
    assert "eval/test/mse" in printed and "best.ckpt" in printed and "baseline/mse" in printed
    assert store.history(run_id, "eval/test/mse") == [(30, pytest.approx(metrics["eval/test/mse"]))]
    after = store.client.get_run(run_id)
    assert after.info.status == "FINISHED"  # evaluating does not reopen the run
    record = store.client.download_artifacts(run_id, "eval/test.json", str(tmp_path))
    assert json.loads(Path(record).read_text())["checkpoint"] == "best.ckpt"


def test_eval_on_the_val_split_reproduces_the_best_epochs_val_metric(trained) -> None:
    store, run = trained
    metrics, _ = _eval(store, run.info.run_id, "eval.split=val")
    best_val = min(v for _, v in store.history(run.info.run_id, "val/mse"))
    assert metrics["eval/val/mse"] == pytest.approx(best_val, rel=1e-5)


def test_eval_at_another_seq_len_logs_under_a_key_naming_the_length(trained) -> None:
    store, run = trained
    metrics, printed = _eval(store, run.info.run_id, "task.seq_len=60")
    assert set(metrics) == {"eval/test/len60/loss", "eval/test/len60/mse"}
    assert "len60" in printed
    assert [s for s, _ in store.history(run.info.run_id, "eval/test/len60/mse")] == [60]


def test_eval_refuses_an_unknown_key_or_a_config_group_in_one_line(trained) -> None:
    store, run = trained
    with pytest.raises(ConfigError, match=r"task.seqlen: the run's config has no key 'seqlen'"):
        _eval(store, run.info.run_id, "task.seqlen=60")
    with pytest.raises(ConfigError, match=r"model=gru: a trained run keeps its model"):
        _eval(store, run.info.run_id, "model=gru")
    with pytest.raises(ConfigError, match=r"eval.split='dev': must be one of"):
        _eval(store, run.info.run_id, "eval.split=dev")
    with pytest.raises(ConfigError, match=r"task.seq_len=1: must be >= 2"):
        _eval(store, run.info.run_id, "task.seq_len=1")


def test_eval_of_an_unknown_run_id_names_the_store_and_suggests_uri(trained) -> None:
    store, _ = trained
    with pytest.raises(ConfigError, match=r"no run '0+' in sqlite:///.*--uri") as err:
        _eval(store, "0" * 32)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def no_checkpoint_run(tmp_path_factory):
    """A run trained with train.keep_checkpoints=none, alone in a second store."""
    result, uri = train_in_process(
        tmp_path_factory.mktemp("no_checkpoint"), "task=adding", "task.seq_len=10",
        "task.train_size=64", "task.val_size=32", "task.test_size=32", "model.hidden_size=4",
        "train.max_epochs=1", "train.keep_checkpoints=none",
    )  # fmt: skip
    return result.run.run_id, uri


def test_eval_of_a_run_without_checkpoints_is_one_clear_line(no_checkpoint_run) -> None:
    run_id, uri = no_checkpoint_run
    with pytest.raises(ConfigError, match=r"has no checkpoint to evaluate.*keep_checkpoints=none"):
        evaluate_run(run_id, [], uri, stream=io.StringIO())


def test_eval_of_a_run_from_another_store_says_so(trained, no_checkpoint_run) -> None:
    _, run = trained
    _, other_uri = no_checkpoint_run
    with pytest.raises(ConfigError, match=r"no run .* in sqlite:///.*another store needs --uri"):
        evaluate_run(run.info.run_id, [], other_uri, stream=io.StringIO())


def test_eval_of_a_bring_your_own_task_reads_another_test_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RNNLAB_CACHE_DIR", str(tmp_path / "cache"))
    words = ["good", "bad", "fine", "awful", "great", "poor"]
    rows = [(f"{w} {w} film", "pos" if i % 2 == 0 else "neg") for i, w in enumerate(words * 6)]
    for name, part in (("train", rows), ("test", rows[:12]), ("fresh", rows[12:24])):
        lines = ["text,label", *(f"{t},{label}" for t, label in part)]
        (tmp_path / f"{name}.csv").write_text("\n".join(lines) + "\n")
    result, uri = train_in_process(
        tmp_path, "task=text_classification", f"task.path={tmp_path / 'train.csv'}",
        f"task.test_path={tmp_path / 'test.csv'}", "task.min_freq=1", "model.hidden_size=4",
        "train.max_epochs=1", "train.batch_size=8",
    )  # fmt: skip
    assert result.outcome == "completed"
    metrics = evaluate_run(
        result.run.run_id, [f"task.test_path={tmp_path / 'fresh.csv'}"], uri, stream=io.StringIO()
    )
    assert "eval/test/file-fresh/accuracy" in metrics


@pytest.mark.skipif(not _eval_wired(), reason="`rnnlab eval` is not wired into cli.py yet")
def test_eval_command_prints_metrics_and_exits_0_or_2_with_one_line(trained, run_cli) -> None:
    store, run = trained
    folder = store.path.parent
    rc, out, err = run_cli(folder, "eval", run.info.run_id, "task.seq_len=45")
    assert rc == 0, err
    assert "eval/test/len45/mse" in out
    rc, out, err = run_cli(folder, "eval", "f" * 32)
    assert rc == 2
    assert err.strip().count("\n") == 0 and "no run" in err
