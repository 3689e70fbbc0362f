"""Where a trial checkpoint says its best checkpoint is (sweep/trial.py: `_best_into`)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from rnnlab.sweep.trial import _best_into
from rnnlab.training.checkpoint_io import WriteAtTeardownCheckpointIO
from rnnlab.training.model_checkpoint import BEST_FILE


def _trainer(folder: Path, epoch_value: float, best_value: float, epoch: int = 3):
    mc = ModelCheckpoint(dirpath=folder, filename="best", monitor="val/ppl")
    mc.best_model_path = str(folder / BEST_FILE)
    mc.best_model_score = torch.tensor(best_value)  # as publish() puts it: float32
    io = WriteAtTeardownCheckpointIO(folder, [BEST_FILE], 2**20)
    io.save_checkpoint({"state_dict": {"w": torch.ones(2)}}, mc.best_model_path)  # held
    return SimpleNamespace(
        checkpoint_callbacks=[mc],
        lightning_module=SimpleNamespace(
            epoch_metrics={"epoch": float(epoch), "val/ppl": epoch_value}
        ),
        current_epoch=epoch,
        strategy=SimpleNamespace(checkpoint_io=io),
    )


def test_this_epochs_score_at_float32_is_the_trial_checkpoint_itself(tmp_path: Path) -> None:
    value = math.exp(1.2345678901234)  # a double that float32 cannot hold exactly
    assert float(torch.tensor(value)) != value
    out = tmp_path / "out"
    out.mkdir()
    assert _best_into(_trainer(tmp_path, value, value), out) == "trial"
    assert not (out / BEST_FILE).exists()


def test_an_earlier_best_is_copied_from_memory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert _best_into(_trainer(tmp_path, 2.5, 1.5), out) == "file"
    assert torch.equal(torch.load(out / BEST_FILE)["state_dict"]["w"], torch.ones(2))


def test_a_stale_validation_value_is_not_taken_for_this_epochs(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    trainer = _trainer(tmp_path, 1.5, 1.5)
    trainer.current_epoch = 4  # no validation this epoch: epoch_metrics are epoch 3's
    assert _best_into(trainer, out) == "file"
