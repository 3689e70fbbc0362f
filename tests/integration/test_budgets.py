"""Time budgets end runs and sweeps cleanly (outcome `budget`); checkpoint retention is honoured."""

from __future__ import annotations

import time

import pytest
from tests.conftest import train_in_process

# A run of 5000 short epochs: far longer than its 3 s budget, with an epoch well inside it.
LONG_RUN = [
    "task=adding",
    "task.seq_len=20",
    "task.train_size=128",
    "task.val_size=32",
    "task.test_size=32",
    "model=rnn",
    "model.hidden_size=8",
    "train.batch_size=64",
    "train.max_epochs=5000",
    "train.early_stopping.enabled=false",
]


@pytest.fixture(scope="module")
def budget_run(tmp_path_factory):
    """`train.time_budget=3 train.keep_checkpoints=best` on LONG_RUN, in its own store."""
    from mlflow.tracking import MlflowClient

    started = time.monotonic()
    result, uri = train_in_process(
        tmp_path_factory.mktemp("budget_run"),
        *LONG_RUN,
        "train.time_budget=3",
        "train.keep_checkpoints=best",
    )
    elapsed = time.monotonic() - started
    client = MlflowClient(tracking_uri=uri)
    return result, elapsed, client, client.get_run(result.run.run_id)


def test_train_time_budget_ends_the_run_cleanly_with_outcome_budget_and_its_metrics(
    budget_run,
) -> None:
    result, elapsed, client, run = budget_run
    assert result.outcome == "budget"
    assert run.info.status == "FINISHED"
    assert run.data.tags["rnnlab.outcome"] == "budget"
    epochs = [m.step for m in client.get_metric_history(run.info.run_id, "val/mse")]
    assert 1 <= len(epochs) < 5000, epochs  # stopped early, after at least one whole epoch
    assert "val/mse" in run.data.metrics and "test/mse" in run.data.metrics
    assert elapsed < 60, elapsed  # 3 s of training, plus start-up and the test pass


def test_keep_checkpoints_best_logs_only_the_best_checkpoint(budget_run) -> None:
    _, _, client, run = budget_run
    logged = [a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")]
    assert logged == ["checkpoints/best.ckpt"]


# --- the sweep budget -----------------------------------------------------------------------

# Trials far longer than the budget (hundreds of epochs each): whichever trials are running
# when the budget ends are cut, whatever the machine's speed, so the outcome `budget` must appear.
# 40 s: a trial opens its run only after its Ray worker has imported torch, Lightning and
# MLflow, ~8 s on an idle 2-core machine but over 20 s while `make test`'s other process runs.
BUDGET_S = 40
SWEEP_BUDGET = [
    "task=adding",
    "task.seq_len=20",
    "task.train_size=512",
    "task.val_size=64",
    "task.test_size=64",
    "model.hidden_size=16",
    "train.batch_size=32",
    "train.max_epochs=1000",
    "train.early_stopping.enabled=false",
    "diagnostics.plots=false",
    "sweep.trials=20",
    "sweep.scheduler=none",
    "sweep.final_seeds=0",
    "sweep.progress=false",
    f"sweep.time_budget={BUDGET_S}",
    "sweep.name=budget",
]


@pytest.fixture(scope="module")
def ray_local():
    from rnnlab.sweep.ray_runtime import use_loopback

    use_loopback()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def budget_sweep(tmp_path_factory, ray_local):
    """SWEEP_BUDGET run in-process, with the driver's wall time for the search measured."""
    from mlflow.tracking import MlflowClient

    from rnnlab.sweep import runner
    from rnnlab.sweep.plan import build_plan

    folder = tmp_path_factory.mktemp("budget_sweep")
    searched: list[float] = []
    run_search = runner._run_search

    def timed(*args, **kwargs):
        started = time.monotonic()
        try:
            return run_search(*args, **kwargs)
        finally:
            searched.append(time.monotonic() - started)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "_run_search", timed)
        mp.chdir(folder)
        plan = build_plan(SWEEP_BUDGET)
        runner.preflight(plan)
        summary = runner.run_sweep(plan)
    client = MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    everything = client.search_runs([client.get_experiment_by_name("rnnlab").experiment_id])
    return summary, searched, everything


@pytest.mark.slow
def test_sweep_time_budget_closes_every_run_and_marks_the_cut_trials_budget(budget_sweep) -> None:
    summary, _, everything = budget_sweep
    assert summary.status == "finished"
    assert everything and all(r.info.status != "RUNNING" for r in everything)
    children = [r for r in everything if r.data.tags.get("rnnlab.role") == "search"]
    if not children:
        # A trial opens its run once its Ray worker has started (see BUDGET_S); on a machine
        # too loaded for that, nothing existed to close.
        pytest.skip(f"no trial opened its run within the {BUDGET_S} s budget on this machine")
    outcomes = [c.data.tags["rnnlab.outcome"] for c in children]
    assert len(children) < 20, outcomes  # the budget, not the trial count, ended the search
    assert "budget" in outcomes, outcomes
    assert set(outcomes) <= {"completed", "budget"}, outcomes


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="Tune kills a trial that cannot take its stop request (a worker still starting up) "
    "only 10 s after the budget; trials should stop themselves at the sweep's deadline "
    "(see docs/design-notes.md, 'Budgets')",
)
def test_sweep_time_budget_stops_the_search_within_a_few_seconds_of_its_budget(
    budget_sweep,
) -> None:
    _, searched, _ = budget_sweep
    assert searched, "the search did not run"
    # Tune's clock starts in Tuner.fit(); a few seconds cover its set-up and the last report.
    assert searched[0] < BUDGET_S + 5, f"search took {searched[0]:.1f} s for a {BUDGET_S} s budget"
