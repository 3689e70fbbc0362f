"""Callbacks whose empty hooks Lightning no longer calls behave as before.

`skip_inherited_hooks` (training/callback_hooks.py) sets a callback's inherited no-op hooks
to None, relying on Lightning to skip a hook that is not callable. These tests run real
Trainers through fit, a resume from a checkpoint, validate, test and predict. If Lightning
ever calls one of the hidden hooks, the run fails with a TypeError. The tests also check
that the hooks a callback does override are still called, and called as often.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.training.callback_hooks import DISPATCHED_HOOKS, skip_inherited_hooks
from rnnlab.training.data_logging import PaddingFraction


class _Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return (self.w - batch[0].mean()) ** 2

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", ((self.w - batch[0].mean()) ** 2).detach())

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self.log("test/loss", ((self.w - batch[0].mean()) ** 2).detach())

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.w.detach().expand(batch[0].shape[0])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Counting(Callback):
    """Counts the calls of the three hooks it overrides."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def on_train_batch_end(self, *args: Any) -> None:
        self.calls["on_train_batch_end"] += 1

    def on_validation_epoch_end(self, *args: Any) -> None:
        self.calls["on_validation_epoch_end"] += 1

    def on_test_end(self, *args: Any) -> None:
        self.calls["on_test_end"] += 1


def _trainer(folder: Path, callbacks: list[Callback], epochs: int = 3) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=epochs,
        callbacks=callbacks,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=folder,
    )


def _data() -> DataLoader:
    return DataLoader(TensorDataset(torch.randn(8, 1)), batch_size=2)


def _run_every_stage(folder: Path, make: Any) -> _Counting:
    """fit, fit again from the last checkpoint, validate, test, predict; each Trainer gets
    callbacks from `make()`; returns the counting callback of the first fit."""
    data = _data()
    first = make(folder)
    trainer = _trainer(folder, first)
    trainer.fit(_Tiny(), train_dataloaders=data, val_dataloaders=data)
    last = next(cb for cb in first if isinstance(cb, ModelCheckpoint)).last_model_path
    again = _trainer(folder, make(folder), epochs=5)
    again.fit(_Tiny(), train_dataloaders=data, val_dataloaders=data, ckpt_path=last)
    assert again.current_epoch == 5
    again.validate(again.lightning_module, dataloaders=data, verbose=False)
    again.test(again.lightning_module, dataloaders=data, verbose=False)
    assert len(again.predict(again.lightning_module, dataloaders=data)) == 4
    return next(cb for cb in first if isinstance(cb, _Counting))


def _callbacks(folder: Path, skip: bool) -> list[Callback]:
    callbacks: list[Callback] = [
        ModelCheckpoint(dirpath=folder / "ckpt", monitor="val/loss", save_last=True),
        EarlyStopping(monitor="val/loss", patience=10),
        PaddingFraction(),
        _Counting(),
    ]
    return [skip_inherited_hooks(cb) for cb in callbacks] if skip else callbacks


def test_the_inherited_hooks_are_hidden_and_the_others_kept() -> None:
    counting = skip_inherited_hooks(_Counting())
    assert counting.on_before_backward is None
    assert counting.on_fit_start is None
    assert callable(counting.on_train_batch_end)
    assert callable(counting.on_validation_epoch_end)
    # Lightning calls these directly, so they must stay callable.
    for name in ("state_dict", "load_state_dict", "on_save_checkpoint", "on_load_checkpoint"):
        assert callable(getattr(counting, name)), name
    assert "on_save_checkpoint" not in DISPATCHED_HOOKS
    # Another instance of the class is untouched.
    assert callable(_Counting().on_before_backward)


def test_every_stage_runs_with_hidden_hooks_and_calls_the_overridden_ones_as_often(
    tmp_path: Path,
) -> None:
    hidden = _run_every_stage(tmp_path / "hidden", lambda f: _callbacks(f, skip=True))
    shown = _run_every_stage(tmp_path / "shown", lambda f: _callbacks(f, skip=False))
    assert hidden.calls == shown.calls
    assert hidden.calls["on_train_batch_end"] == 3 * 4
    assert hidden.calls["on_validation_epoch_end"] == 3


def test_a_hidden_hook_is_not_called_by_lightning(tmp_path: Path) -> None:
    """The saving: Lightning passes over a hidden hook instead of calling a no-op."""
    seen: list[str] = []

    class Spy(_Counting):
        @property
        def state_key(self) -> str:  # Lightning reads it once per hook it calls
            seen.append("key")
            return super().state_key

    data = _data()
    _trainer(tmp_path / "shown", [Spy()], epochs=1).fit(_Tiny(), data, data)
    shown = len(seen)
    seen.clear()
    _trainer(tmp_path / "hidden", [skip_inherited_hooks(Spy())], epochs=1).fit(_Tiny(), data, data)
    # One epoch of 4 batches: about 40 dispatches, of which the 4 + 1 overridden remain.
    assert len(seen) < shown / 4, (len(seen), shown)
