"""rnnlab's collector policy (rnnlab/collector.py): who turns Python's cyclic GC off and on."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from rnnlab.collector import long_lived_objects_frozen, paused_for_startup


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    assert gc.isenabled() and gc.get_freeze_count() == 0
    try:
        yield
    finally:
        gc.unfreeze()
        gc.enable()


def test_startup_pause_turns_the_collector_off_and_back_on() -> None:
    with paused_for_startup():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_startup_pause_turns_it_back_on_after_an_error() -> None:
    with pytest.raises(RuntimeError), paused_for_startup():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_training_runs_with_the_collector_on_and_the_startup_objects_frozen() -> None:
    with paused_for_startup():
        with long_lived_objects_frozen():
            assert gc.isenabled()
            assert gc.get_freeze_count() > 1000  # at least this test's imports
        # Back in the command's own code: paused again, nothing left frozen.
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    assert gc.isenabled()


def test_a_collector_the_caller_disabled_stays_disabled_through_training() -> None:
    gc.disable()
    with paused_for_startup():
        assert not gc.isenabled()
        with long_lived_objects_frozen():
            assert not gc.isenabled()
    assert not gc.isenabled()


def test_outside_the_command_training_leaves_the_collector_as_it_was() -> None:
    with long_lived_objects_frozen():
        assert gc.isenabled()
        assert gc.get_freeze_count() > 1000
    assert gc.isenabled() and gc.get_freeze_count() == 0
