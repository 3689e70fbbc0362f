"""A retried sweep trial completes the child run its killed attempt left half-written.

An attempt killed between creating its MLflow run and logging the config leaves a run with
the trial's tags and no params. The retry finds that run by its trial id and continues it
(`open_trial_run`); the run must end with the whole config, as a run never interrupted has.
Real MLflow on a SQLite store; no Ray (the function takes the trial id Tune would give).
"""

from __future__ import annotations

from pathlib import Path

from rnnlab.composition import absolute_paths, compose
from rnnlab.config import validate_run_config
from rnnlab.sweep.trial import TrialPayload, open_trial_run
from rnnlab.tracking import runs


def _setup(folder: Path) -> tuple[object, TrialPayload, object]:
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    cfg = validate_run_config(
        absolute_paths(compose("train", ["train.seed=1001", f"tracking.uri={uri}"]), base=folder)
    )
    parent = runs.start_run(uri, cfg.tracking.experiment, "s/parent")
    payload = TrialPayload(
        bases={},
        sweep_name="s",
        parent_run_id=parent.run_id,
        experiment_id=parent.experiment_id,
        tracking_uri=uri,
        metric="val/loss",
        mode="min",
        role="final",
    )
    return cfg, payload, runs.client(uri)


def test_a_retry_logs_the_config_its_killed_attempt_never_did(tmp_path: Path) -> None:
    cfg, payload, client = _setup(tmp_path)
    # What the killed attempt got as far as: the run with its tags, nothing else.
    killed = runs.start_run(
        payload.tracking_uri,
        cfg.tracking.experiment,
        "s/final-seed1001",
        tags={"rnnlab.sweep": "s", "rnnlab.trial_id": "t1", "rnnlab.role": "final"},
        parent_run_id=payload.parent_run_id,
    )
    assert client.get_run(killed.run_id).data.params == {}

    handle = open_trial_run(payload, cfg, "t1", {"model.dropout": 0.25})
    assert handle.run_id == killed.run_id  # continued, not a second run beside it
    run = client.get_run(handle.run_id)
    assert run.info.status == "RUNNING"
    assert run.data.params["train.seed"] == "1001"
    assert run.data.params["sampled.model.dropout"] == "0.25"
    # The same params as a trial that was never interrupted.
    fresh = open_trial_run(payload, cfg, "t2", {"model.dropout": 0.25})
    assert run.data.params == client.get_run(fresh.run_id).data.params
    names = {a.path for a in client.list_artifacts(handle.run_id)}
    assert "config.yaml" in names


def test_a_reopened_run_keeps_the_params_it_holds(tmp_path: Path) -> None:
    cfg, payload, client = _setup(tmp_path)
    first = open_trial_run(payload, cfg, "t1", {"model.dropout": 0.25})
    again = open_trial_run(payload, cfg, "t1", {"model.dropout": 0.25})
    assert again.run_id == first.run_id
    assert len(client.search_runs([payload.experiment_id], "tags.`rnnlab.trial_id` = 't1'")) == 1
    assert client.get_run(again.run_id).data.params["train.seed"] == "1001"
