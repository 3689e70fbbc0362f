"""Sweeps on real Ray Tune, real Optuna and a real MLflow store (no mocks).

In-process sweeps share one loopback Ray instance for the module (num_cpus=2); the tests
that kill processes are in test_sweep_faults.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tests.integration._sweeps import TINY_SWEEP, store_client, sweep_runs

from rnnlab.sweep.plan import build_plan
from rnnlab.sweep.runner import preflight, run_sweep


@pytest.fixture(scope="module")
def ray_local():
    from rnnlab.sweep.ray_runtime import use_loopback

    use_loopback()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


def _sweep(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str):
    monkeypatch.chdir(tmp_path)
    plan = build_plan([*TINY_SWEEP, *overrides])
    preflight(plan)
    return plan, run_sweep(plan)


@pytest.mark.slow
def test_four_trial_sweep_leaves_one_parent_and_four_children_with_sampled_params(
    tmp_path, monkeypatch, ray_local
):
    plan, summary = _sweep(
        tmp_path, monkeypatch, "sweep.trials=4", "sweep.name=four", "sweep.final_seeds=2"
    )
    client = store_client(tmp_path)
    exp = client.get_experiment_by_name("rnnlab")
    all_runs = client.search_runs([exp.experiment_id])
    parents = [r for r in all_runs if r.data.tags.get("rnnlab.role") == "sweep"]
    assert len(parents) == 1
    children = sweep_runs(client, exp.experiment_id, "four")
    assert len(children) == 4
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert child.info.status != "RUNNING"
        assert child.data.tags["rnnlab.outcome"] in ("completed", "pruned")
        params = child.data.params
        for key in (
            "sampled.model.init.recurrent",
            "sampled.model.dropout",
            "sampled.train.clip.mode",
        ):
            assert key in params
        # the sampled value is the value the run trained with
        assert params["model.init.recurrent"] == params["sampled.model.init.recurrent"]
        assert float(params["model.dropout"]) == pytest.approx(
            float(params["sampled.model.dropout"])
        )
        assert "model.hidden_size" in params  # the full resolved config too
        assert client.get_metric_history(child.info.run_id, "val/mse")
    assert sum(summary.counts.values()) == 4
    # final evaluation: the winner re-trained on 2 seeds, mean ± std on the parent
    parent = client.get_run(parents[0].info.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["final/seeds"] == 2
    assert "final/test_mse_mean" in parent.data.metrics
    assert "final/test_mse_std" in parent.data.metrics
    assert len(sweep_runs(client, exp.experiment_id, "four", role="final")) == 2
    # the Optuna study survives the sweep, in agreement with Tune
    import optuna

    study = optuna.load_study(study_name="four", storage=f"sqlite:///{plan.folder / 'optuna.db'}")
    assert len(study.trials) == 4
    state = json.loads((plan.folder / "sweep.json").read_text())
    assert state["status"] == "finished"


@pytest.mark.slow
def test_diverging_trial_is_recorded_diverged_and_sweep_continues(tmp_path, monkeypatch, ray_local):
    _plan, summary = _sweep(
        tmp_path,
        monkeypatch,
        "model=irnn",
        "search=lr_clip",
        "search.params.train.lr.high=100.0",
        "train.optimizer=sgd",
        "sweep.trials=3",
        "sweep.scheduler=none",
        "sweep.name=div",
        "sweep.initial_points=[{train.lr: 90.0, train.clip.threshold: 100.0}]",
    )
    client = store_client(tmp_path)
    exp = client.get_experiment_by_name("rnnlab")
    children = sweep_runs(client, exp.experiment_id, "div")
    outcomes = sorted(c.data.tags["rnnlab.outcome"] for c in children)
    assert len(children) == 3
    assert outcomes.count("diverged") >= 1, outcomes
    assert outcomes.count("completed") >= 1, outcomes
    diverged = next(c for c in children if c.data.tags["rnnlab.outcome"] == "diverged")
    assert diverged.info.status == "FAILED"
    assert "rnnlab.divergence.step" in diverged.data.tags
    assert summary.status == "finished"


@pytest.mark.slow
def test_group_search_over_models_runs_both_and_tests_each_arm(tmp_path, monkeypatch, ray_local):
    _plan, _summary = _sweep(
        tmp_path,
        monkeypatch,
        "search=init_only",
        "search.params.model.init.recurrent.choices=[orthogonal]",
        "+search.groups.model=[rnn,lstm]",
        "sweep.sampler=grid",
        "sweep.trials=2",
        "sweep.name=groups",
        "sweep.test_trials=true",
    )
    client = store_client(tmp_path)
    exp = client.get_experiment_by_name("rnnlab")
    children = sweep_runs(client, exp.experiment_id, "groups")
    cells = sorted(c.data.params["model.cell"] for c in children)
    assert cells == ["lstm", "rnn"]
    # sweep.test_trials: a comparison of arms gets every arm's test metric, not only the best's.
    assert all("test/mse" in c.data.metrics for c in children), [c.data.metrics for c in children]


@pytest.mark.slow
def test_eight_concurrent_trials_lose_no_metric(tmp_path, monkeypatch, ray_local):
    plan, _summary = _sweep(
        tmp_path,
        monkeypatch,
        "hardware.cpus_per_trial=0.25",
        "sweep.max_concurrent=8",
        "sweep.trials=8",
        "sweep.scheduler=none",
        "sweep.sampler=random",
        "train.max_epochs=3",
        "train.early_stopping.enabled=false",
        "sweep.name=eight",
    )
    client = store_client(tmp_path)
    exp = client.get_experiment_by_name("rnnlab")
    children = sweep_runs(client, exp.experiment_id, "eight")
    assert len(children) == 8
    for child in children:
        if child.data.tags["rnnlab.outcome"] == "diverged":
            continue
        for key in ("train/loss", "val/loss", "val/mse", "lr"):
            steps = [m.step for m in client.get_metric_history(child.info.run_id, key)]
            assert sorted(steps) == [0, 1, 2], (key, steps)
    log = (plan.folder / "mlflow-server.log").read_text()
    assert "database is locked" not in log


@pytest.mark.slow
def test_a_tracking_server_that_never_starts_stops_the_sweep_with_its_error(
    tmp_path, monkeypatch, ray_local
):
    """Trials start while the loopback server boots; if it dies, the search stops and says so."""
    import sys
    import time

    from rnnlab.config import ConfigError
    from rnnlab.tracking import server

    monkeypatch.setattr(
        server,
        "build_server_command",
        lambda *args, **kwargs: [
            sys.executable,
            "-c",
            "import time, sys; time.sleep(2); sys.exit(3)",
        ],
    )
    started = time.monotonic()
    with pytest.raises(ConfigError, match="exited with code 3"):
        _sweep(tmp_path, monkeypatch, "sweep.trials=2", "sweep.name=noserver")
    assert time.monotonic() - started < 90
    record = json.loads((tmp_path / "rnnlab-sweeps/noserver/sweep.json").read_text())
    assert record["status"] == "interrupted"  # resumable once the server starts
    client = store_client(tmp_path)
    exp = client.get_experiment_by_name("rnnlab")
    everything = client.search_runs([exp.experiment_id])
    assert [r.data.tags["rnnlab.role"] for r in everything] == ["sweep"]
    assert everything[0].info.status == "KILLED"
