"""How `fit` treats the Python process it trains in: the collector's frozen generation."""

from __future__ import annotations

import gc
from pathlib import Path

from pytorch_lightning.callbacks import Callback

from rnnlab.collector import long_lived_objects_frozen
from rnnlab.composition import absolute_paths, compose
from rnnlab.config import validate_run_config
from rnnlab.training.fit import fit


class _FreezeProbe(Callback):
    def __init__(self) -> None:
        self.frozen_during_epochs: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.frozen_during_epochs.append(gc.get_freeze_count())


def test_objects_from_before_training_are_frozen_while_it_runs_and_released_after(
    tiny, tmp_path: Path
) -> None:
    assert gc.get_freeze_count() == 0
    cfg = validate_run_config(
        absolute_paths(compose("train", [*tiny, "train.max_epochs=2"]), base=tmp_path)
    )
    probe = _FreezeProbe()
    result = fit(cfg, extra_callbacks=[probe], run_test=False)
    assert result.outcome == "completed"
    assert len(probe.frozen_during_epochs) == 2
    assert min(probe.frozen_during_epochs) > 10_000  # the imported libraries, at least
    assert gc.get_freeze_count() == 0  # handed back: a sweep worker's next trial leaks nothing


def test_a_freeze_someone_else_made_is_left_alone() -> None:
    gc.freeze()
    try:
        before = gc.get_freeze_count()
        # Objects made after their freeze: a second freeze would add them to the count.
        newer = [[i] for i in range(20_000)]
        with long_lived_objects_frozen():
            pass
        after = gc.get_freeze_count()
        # Not unfrozen, and nothing added. (The count may fall by a few: frozen objects that
        # another thread releases are freed by reference counting all the same.)
        assert 0 < after <= before
        assert len(newer) == 20_000
    finally:
        gc.unfreeze()


def test_the_rnnlab_command_trains_with_the_collector_on_and_freezes_the_heap_for_exit(
    tiny, tmp_path: Path, monkeypatch
) -> None:
    """`console_main` pauses the collector for start-up only: a trainer that ran with it off
    would leak every cycle it makes. The freeze for exit is what shortens shutdown."""
    import sys

    import pytorch_lightning as pl

    from rnnlab.cli import console_main

    seen: list[tuple[bool, int]] = []
    original = pl.Trainer.fit

    def recording_fit(self, *args, **kwargs):
        seen.append((gc.isenabled(), gc.get_freeze_count()))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pl.Trainer, "fit", recording_fit)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["rnnlab", "train", *tiny, "train.max_epochs=1"])
    try:
        assert console_main() == 0
        assert gc.get_freeze_count() > 10_000  # frozen for the exit this process skips
    finally:
        gc.unfreeze()
    assert len(seen) == 1
    enabled, frozen = seen[0]
    assert enabled
    assert frozen > 10_000
    assert gc.isenabled()
