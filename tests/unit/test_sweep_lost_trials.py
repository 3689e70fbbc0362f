"""Which child runs a resumed sweep must disown: trials Tune forgot when its driver was killed."""

from __future__ import annotations

from types import SimpleNamespace

from rnnlab.sweep.runner import lost_trial_ids


def _result(trial_id: str | None, folder: str | None) -> SimpleNamespace:
    metrics = {"trial_id": trial_id} if trial_id else {}
    path = f"/sweeps/s/tune/{folder}" if folder else None
    return SimpleNamespace(metrics=metrics, path=path)


def test_a_run_whose_trial_is_not_in_tunes_record_is_lost() -> None:
    grid = [
        _result("aaaa1111", "run_trial_aaaa1111_1_lr=0.1"),
        _result("bbbb2222", "run_trial_bbbb2222_2_lr=0.2"),
    ]
    assert lost_trial_ids(grid, ["aaaa1111", "bbbb2222", "cccc3333"]) == {"cccc3333"}


def test_a_trial_that_never_reported_is_known_by_its_folder() -> None:
    grid = [_result("aaaa1111", "run_trial_aaaa1111_1"), _result(None, "run_trial_dddd4444_2")]
    assert lost_trial_ids(grid, ["aaaa1111", "dddd4444"]) == set()


def test_an_empty_record_disowns_nothing() -> None:
    assert lost_trial_ids([], ["aaaa1111"]) == set()
    assert lost_trial_ids([SimpleNamespace(metrics=None, path=None)], ["aaaa1111"]) == set()


def test_runs_without_a_trial_id_are_left_alone() -> None:
    assert lost_trial_ids([_result("aaaa1111", None)], ["", "aaaa1111"]) == set()
