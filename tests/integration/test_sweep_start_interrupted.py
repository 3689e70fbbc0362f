"""A sweep whose driver died before it saved its record (`sweep.json`) can be resumed.

The test builds the state such a driver leaves behind, using the same functions the driver
runs: the folder and plan, and in one case also the parent run. Then it resumes the sweep
with the real `rnnlab sweep ... sweep.resume=true`. Before the fix, the resume was refused,
the name was blocked, and the parent run stayed RUNNING in MLflow for good.
"""

from __future__ import annotations

import json

import pytest
from tests.integration._sweeps import (
    TINY_SWEEP,
    resume_sweep,
    rnnlab_cli,
    store_client,
    sweep_runs,
)

TINY = [*TINY_SWEEP, "sweep.trials=2", "sweep.name=cut"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("parent_created", "earlier_sweep"),
    [(True, False), (False, False), (True, True)],
    ids=["after_parent", "before_parent", "after_parent_beside_an_earlier_sweep"],
)
def test_a_driver_dead_before_its_record_resumes_into_one_finished_parent_run(
    tmp_path, parent_created: bool, earlier_sweep: bool
) -> None:
    from rnnlab.sweep.plan import build_plan
    from rnnlab.sweep.runner import _sweep_parent, save_plan, search_raw_of
    from rnnlab.tracking import runs

    plan = build_plan(TINY, cwd=tmp_path)
    plan.folder.mkdir(parents=True)
    search_raw = search_raw_of(plan)
    save_plan(plan, search_raw)
    uri = plan.base_cfg.tracking.uri
    earlier = None
    if earlier_sweep:  # a finished sweep of the same name, whose folder was deleted since
        earlier = _sweep_parent(plan, uri, search_raw, adopt=False)
        runs.end_run(earlier, "completed")
    orphan = None
    if parent_created:
        orphan = _sweep_parent(plan, uri, search_raw, adopt=False)

    cmd, env = rnnlab_cli()
    resume_sweep(cmd, env, tmp_path, "cut")

    client = store_client(tmp_path)
    experiment_id = client.get_experiment_by_name("rnnlab").experiment_id
    parents = sweep_runs(client, experiment_id, "cut", role="sweep")
    if earlier is not None:  # left as it was
        assert [p.info.run_id for p in parents].count(earlier.run_id) == 1
        parents = [p for p in parents if p.info.run_id != earlier.run_id]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    if orphan is not None:
        assert parent.info.run_id == orphan.run_id  # adopted, not duplicated
    assert parent.data.params["sweep.trials"] == "2"
    trials = sweep_runs(client, experiment_id, "cut")
    assert len(trials) == 2
    assert {t.data.tags["mlflow.parentRunId"] for t in trials} == {parent.info.run_id}
    record = json.loads((plan.folder / "sweep.json").read_text())
    assert record["status"] == "finished"
    assert record["parent_run_id"] == parent.info.run_id
