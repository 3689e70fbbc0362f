"""A sweep whose driver is killed while it re-trains the winner on its final seeds.

Its own file so that the suite's two workers (pytest-xdist, whole files each) can put it
beside whichever sweep file finishes first.
"""

from __future__ import annotations

import json

import pytest
from tests.integration._sweeps import (
    SLOW_TRIALS,
    kill_sweep_when,
    resume_sweep,
    rnnlab_cli,
    store_client,
    sweep_runs,
    tune_results,
)


@pytest.mark.slow
def test_driver_killed_during_the_final_seeds_resumes_them_without_duplicate_runs(tmp_path):
    cmd, env = rnnlab_cli()
    args = [*cmd, "sweep", *SLOW_TRIALS, "sweep.trials=1", "sweep.name=final"]
    args[args.index("sweep.final_seeds=0")] = "sweep.final_seeds=2"
    # Killed once a final seed has reported an epoch, before the seeds have finished.
    kill_sweep_when(args, tmp_path, env, lambda: tune_results(tmp_path, "final"), 300)
    assert not any(r.get("rnnlab_done") for r in tune_results(tmp_path, "final"))

    resume_sweep(cmd, env, tmp_path, "final")
    client = store_client(tmp_path)
    exp = client.get_experiment_by_name("rnnlab")
    final = sweep_runs(client, exp.experiment_id, "final", role="final")
    # One run per seed: the resumed evaluation continued the killed one instead of starting
    # both seeds again beside it (which left four final runs).
    assert sorted(r.data.params["train.seed"] for r in final) == ["1000", "1001"]
    assert all(r.data.tags["rnnlab.outcome"] == "completed" for r in final)
    assert all(r.info.status != "RUNNING" for r in client.search_runs([exp.experiment_id]))
    # A seed started after Tune last saved its state is re-run; its first run is tagged lost.
    lost = sweep_runs(client, exp.experiment_id, "final", role="lost")
    assert all(r.info.status != "RUNNING" for r in lost)
    state = json.loads((tmp_path / "rnnlab-sweeps/final/sweep.json").read_text())
    assert state["status"] == "finished"
    assert len(state["summary"]["final"]["values"]) == 2
