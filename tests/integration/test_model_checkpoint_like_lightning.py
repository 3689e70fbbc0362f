"""rnnlab's ModelCheckpoint saves what Lightning's does, with less work per epoch.

`RelocatableModelCheckpoint` replaces three pieces of Lightning's per-epoch bookkeeping
(training/model_checkpoint.py). Each test trains the same scripted run twice, once with
Lightning's `ModelCheckpoint` and once with rnnlab's, and compares what they kept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.training.model_checkpoint import RelocatableModelCheckpoint

# Not monotone, so that "best" and "last" part ways and a later epoch must not replace the best.
VAL_LOSSES = (3.0, 1.0, 2.0, 0.5, 0.7, 0.9)


class _Scripted(pl.LightningModule):
    """A one-weight model whose validation loss follows VAL_LOSSES, epoch by epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return (self.w - batch[0].mean()) ** 2

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.log("val/loss", VAL_LOSSES[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(cls: type[ModelCheckpoint], folder: Path, **kwargs: Any) -> ModelCheckpoint:
    checkpoint = cls(dirpath=folder, enable_version_counter=False, **kwargs)
    data = DataLoader(TensorDataset(torch.randn(8, 1)), batch_size=2)
    trainer = pl.Trainer(
        max_epochs=len(VAL_LOSSES),
        callbacks=[checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=folder,
    )
    trainer.fit(_Scripted(), train_dataloaders=data, val_dataloaders=data)
    return checkpoint


def _kept(checkpoint: ModelCheckpoint, folder: Path) -> dict[str, Any]:
    """What a user of the callback gets: scores, file names, the best file's epoch."""
    best = Path(checkpoint.best_model_path)
    last = folder / "last.ckpt"
    return {
        "best_score": float(checkpoint.best_model_score),
        "best_file": best.name,
        "best_epoch": torch.load(best, weights_only=False)["epoch"],
        "scores": {Path(p).name: float(s) for p, s in checkpoint.best_k_models.items()},
        "last": last.is_symlink() and os.readlink(last),
        "files": sorted(p.name for p in folder.iterdir()),
    }


def _count_symlinks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    real = os.symlink

    def symlink(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        made.append(os.fspath(dst))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "symlink", symlink)
    return made


def test_best_and_linked_last_as_lightning_keeps_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = {"filename": "best", "monitor": "val/loss", "save_top_k": 1, "save_last": "link"}
    made = _count_symlinks(monkeypatch)
    lightning = _kept(_fit(ModelCheckpoint, tmp_path / "pl", **options), tmp_path / "pl")
    links_lightning = len(made)
    made.clear()
    callback = _fit(RelocatableModelCheckpoint, tmp_path / "ours", **options)
    ours = _kept(callback, tmp_path / "ours")

    assert ours == lightning
    # Nothing to check after each batch, so Lightning is not asked to call it.
    assert callback.on_train_batch_end is None
    assert ours["best_epoch"] == VAL_LOSSES.index(min(VAL_LOSSES))
    assert ours["last"] == "best.ckpt"
    # Lightning links last.ckpt again at every epoch, to the same file; rnnlab's does it once.
    assert links_lightning == len(VAL_LOSSES)
    assert len(made) == 1


def test_best_under_changing_file_names_as_lightning(tmp_path: Path) -> None:
    """With the score in the file name, last.ckpt must follow each new best file."""
    options = {
        "filename": "{epoch}-{val/loss:.1f}",
        "auto_insert_metric_name": False,
        "monitor": "val/loss",
        "save_top_k": 2,
        "save_last": "link",
    }
    lightning = _kept(_fit(ModelCheckpoint, tmp_path / "pl", **options), tmp_path / "pl")
    ours = _kept(_fit(RelocatableModelCheckpoint, tmp_path / "ours", **options), tmp_path / "ours")
    assert ours == lightning
    # last.ckpt moved from file to file: to epoch 4's, the last one in the top 2 when saved.
    assert ours["last"] == "4-0.7.ckpt" != ours["best_file"]


def test_step_triggered_saves_still_happen(tmp_path: Path) -> None:
    """rnnlab skips the per-batch checks only when no step or time trigger is set."""
    options = {"filename": "{step}", "every_n_train_steps": 3, "save_top_k": -1}
    lightning = _fit(ModelCheckpoint, tmp_path / "pl", **options)
    ours = _fit(RelocatableModelCheckpoint, tmp_path / "ours", **options)
    assert callable(ours.on_train_batch_end)
    files = sorted(p.name for p in (tmp_path / "ours").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "pl").iterdir())
    assert "step=3.ckpt" in files  # mid-epoch (4 steps per epoch): only the step trigger saves it
    assert ours.best_model_path.endswith(Path(lightning.best_model_path).name)


def test_monitor_candidates_are_copies_with_lightning_values(tmp_path: Path) -> None:
    trainer = pl.Trainer(logger=False, default_root_dir=tmp_path)
    metric = torch.tensor(0.25)
    trainer.callback_metrics.update({"val/loss": metric, "epoch": torch.tensor(4.0)})
    ours = RelocatableModelCheckpoint(dirpath=tmp_path)._monitor_candidates(trainer)
    theirs = ModelCheckpoint(dirpath=tmp_path)._monitor_candidates(trainer)
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert torch.equal(ours[key], theirs[key]) and ours[key].dtype == theirs[key].dtype
    metric.add_(1.0)  # a score kept from the candidates must not follow the live metric
    assert float(ours["val/loss"]) == 0.25
