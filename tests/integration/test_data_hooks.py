"""The data-transfer hooks run where Lightning would run them when resolved once per stage.

`ResolveDataHooksOnce` (training/data_hooks.py) keeps Lightning's answer to "module or
datamodule?" for each batch hook. These tests run real Trainers through fit, validate, test
and predict with a module and a datamodule that each override one hook, and check that each
override runs once per batch, as without the callback, while the classes are inspected a
number of times that no longer grows with the batches.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import pytorch_lightning.trainer.connectors.data_connector as data_connector
import torch
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.training.data_hooks import OnceResolvedDataHooks, ResolveDataHooksOnce

CALLS: Counter[str] = Counter()
BATCH_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")


class _Module(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def transfer_batch_to_device(self, batch: Any, device: torch.device, idx: int) -> Any:
        CALLS["module.transfer_batch_to_device"] += 1
        return super().transfer_batch_to_device(batch, device, idx)

    def _loss(self, batch: Any) -> torch.Tensor:
        inputs, marked = batch
        assert bool(marked.all()), "the datamodule's on_after_batch_transfer did not run"
        return (self.w - inputs.mean()) ** 2

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._loss(batch)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._loss(batch)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._loss(batch)

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self._loss(batch)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Data(pl.LightningDataModule):
    def __init__(self, batches: int) -> None:
        super().__init__()
        self.data = TensorDataset(torch.randn(2 * batches, 1), torch.zeros(2 * batches))

    def _loader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=2)

    train_dataloader = val_dataloader = test_dataloader = predict_dataloader = _loader

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        CALLS["datamodule.on_after_batch_transfer"] += 1
        inputs, marked = batch
        return inputs, torch.ones_like(marked)


def _every_stage(folder: Path, batches: int, resolve_once: bool) -> Counter[str]:
    CALLS.clear()
    trainer = pl.Trainer(
        max_epochs=2,
        callbacks=[ResolveDataHooksOnce()] if resolve_once else [],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=folder,
    )
    module, data = _Module(), _Data(batches)
    trainer.fit(module, datamodule=data)
    trainer.validate(module, datamodule=data, verbose=False)
    trainer.test(module, datamodule=data, verbose=False)
    trainer.predict(module, datamodule=data)
    selector = trainer._data_connector._datahook_selector
    assert isinstance(selector, OnceResolvedDataHooks) == resolve_once
    if resolve_once:  # everything but the answers is still Lightning's selector's
        assert selector.datamodule is data and selector.model is module
    return Counter(CALLS)


@pytest.fixture()
def inspections(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts Lightning's `is_overridden` calls made to choose a batch hook's owner."""
    counted: Counter[str] = Counter()
    original = data_connector.is_overridden

    def counting(name: str, *args: Any, **kwargs: Any) -> bool:
        if name in BATCH_HOOKS:  # Lightning asks the same about other hooks, per stage
            counted[name] += 1
        return original(name, *args, **kwargs)

    monkeypatch.setattr(data_connector, "is_overridden", counting)
    return counted


def test_each_override_runs_once_per_batch_in_every_stage(tmp_path: Path) -> None:
    once = _every_stage(tmp_path / "once", batches=3, resolve_once=True)
    each = _every_stage(tmp_path / "each", batches=3, resolve_once=False)
    assert once == each
    # fit: 2 epochs x (3 train + 3 val) batches; then validate, test, predict: 3 each.
    assert once["module.transfer_batch_to_device"] == 2 * 6 + 3 * 3
    assert once["datamodule.on_after_batch_transfer"] == 2 * 6 + 3 * 3


def test_the_classes_are_inspected_per_stage_not_per_batch(
    tmp_path: Path, inspections: Counter[str]
) -> None:
    _every_stage(tmp_path / "few", batches=2, resolve_once=True)
    few = sum(inspections.values())
    inspections.clear()
    _every_stage(tmp_path / "many", batches=6, resolve_once=True)
    assert sum(inspections.values()) == few
    inspections.clear()
    _every_stage(tmp_path / "each", batches=6, resolve_once=False)
    assert sum(inspections.values()) > 4 * few
