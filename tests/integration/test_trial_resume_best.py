"""A sweep trial resumed in a new folder keeps its real best checkpoint.

Tune retries a crashed trial, and resumes a sweep's unfinished ones, from the trial checkpoint
the trial's reporter writes each epoch (sweep/trial.py), in a fresh temporary folder. Here the
same pieces run without Ray: `write_trial_checkpoint` at every epoch end, then
`restore_trial_checkpoint` into another folder and `fit` resumed there. The resumed epochs are
made worse on purpose, so a best checkpoint that forgot the earlier epochs would show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import Callback, Checkpoint

from rnnlab.composition import absolute_paths, compose
from rnnlab.config import validate_run_config
from rnnlab.sweep.trial import (
    META_FILE,
    TuneReporter,
    restore_trial_checkpoint,
    write_trial_checkpoint,
)
from rnnlab.training.fit import fit
from rnnlab.training.model_checkpoint import BEST_FILE


class _TrialCheckpoints(Checkpoint):
    """What TuneReporter hands Tune, written to folder/epoch-N; a Checkpoint callback, as
    TuneReporter is, so it runs after ModelCheckpoint."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        out = self.folder / f"epoch-{trainer.current_epoch}"
        out.mkdir(parents=True)
        write_trial_checkpoint(trainer, out, {"run_id": "r", "best": None})


class _Scramble(Callback):
    """Adds large noise to every weight when one of `epochs` starts: that epoch scores badly."""

    def __init__(self, *epochs: int) -> None:
        self.epochs = set(epochs)

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch in self.epochs:
            gen = torch.Generator().manual_seed(trainer.current_epoch)
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.add_(torch.randn(p.shape, generator=gen).to(p.device) * 5.0)


def _cfg(tiny, folder: Path, epochs: int, *extra: str):
    overrides = [*tiny, f"train.max_epochs={epochs}", "train.early_stopping.enabled=false", *extra]
    return validate_run_config(absolute_paths(compose("train", overrides), base=folder))


def _fit_reporting_to(trial: Path, cfg, folder: Path):
    """`fit` with its checkpoints in `folder/ckpt` and a trial's checkpoints in `trial`."""
    return fit(
        cfg,
        checkpoint_dir=folder / "ckpt",
        extra_callbacks=[_TrialCheckpoints(trial)],
        run_test=False,
    )


def _weights(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=False, map_location="cpu")["state_dict"]


_ON_GPU = pytest.param(
    ("hardware=gpu",),
    id="gpu",
    marks=[
        pytest.mark.gpu,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ],
)


@pytest.mark.parametrize("hardware", [pytest.param((), id="cpu"), _ON_GPU])
@pytest.mark.parametrize(
    ("scramble_last_first_run", "where"),
    [(False, "trial"), (True, "file")],
    ids=["last-epoch-is-best", "an-earlier-epoch-is-best"],
)
def test_resumed_trial_keeps_its_best_checkpoint(
    tiny, tmp_path: Path, scramble_last_first_run: bool, where: str, hardware: tuple[str, ...]
) -> None:
    """On a GPU the held checkpoints hold CUDA tensors, and the copy handed over is of those."""
    trial = tmp_path / "tune"
    first = fit(
        _cfg(tiny, tmp_path, 3, *hardware),
        checkpoint_dir=tmp_path / "attempt-1",
        extra_callbacks=[_TrialCheckpoints(trial), *([_Scramble(2)] * scramble_last_first_run)],
        run_test=False,
    )
    losses = [h["val/loss"] for h in first.history]
    best_epoch = min(range(len(losses)), key=losses.__getitem__)
    assert (best_epoch != 2) == scramble_last_first_run, losses
    handed = trial / "epoch-2"
    assert json.loads((handed / META_FILE).read_text())["best_checkpoint"] == where
    assert (handed / BEST_FILE).exists() == (where == "file")

    # The retry: a new folder, the trial checkpoint of the last epoch, two bad epochs more.
    folder = tmp_path / "attempt-2"
    _, resume_from, _ = restore_trial_checkpoint(handed, tmp_path, folder)
    assert (folder / BEST_FILE).exists()
    resumed = fit(
        _cfg(tiny, tmp_path, 5, *hardware),
        checkpoint_dir=folder,
        extra_callbacks=[_Scramble(3, 4)],
        resume_from=resume_from,
        run_test=False,
    )
    later = [h["val/loss"] for h in resumed.history]
    assert len(later) == 2 and min(later) > losses[best_epoch], (losses, later)

    assert resumed.best_checkpoint == str(folder / BEST_FILE)
    expected = _weights(first.best_checkpoint)
    kept = _weights(resumed.best_checkpoint)
    assert expected.keys() == kept.keys()
    for key in expected:
        assert torch.equal(expected[key], kept[key]), key
    assert torch.load(resumed.best_checkpoint, weights_only=False)["epoch"] == best_epoch


def test_tune_reporter_runs_after_model_checkpoint() -> None:
    """Lightning runs Checkpoint callbacks last, in order: the reporter must be one to see
    this epoch's save, as `_TrialCheckpoints` above does."""
    assert issubclass(TuneReporter, Checkpoint)


def test_a_run_keeping_no_checkpoints_gets_no_lightning_default_one(tiny, tmp_path: Path) -> None:
    """A reporter that is a Checkpoint callback turns Lightning's checkpointing on; with
    `keep_checkpoints=none` that must not bring in Lightning's default ModelCheckpoint."""
    trial = tmp_path / "tune"
    cfg = validate_run_config(
        absolute_paths(
            compose("train", [*tiny, "train.max_epochs=2", "train.keep_checkpoints=none"]),
            base=tmp_path,
        )
    )
    result = _fit_reporting_to(trial, cfg, tmp_path)
    assert result.outcome == "completed"
    assert result.best_checkpoint is None and result.last_checkpoint is None
    assert all(p.is_relative_to(trial) for p in tmp_path.rglob("*.ckpt"))
    assert json.loads((trial / "epoch-1" / META_FILE).read_text())["best_checkpoint"] is None


def test_a_run_keeping_only_last_hands_no_best_checkpoint(tiny, tmp_path: Path) -> None:
    """`keep_checkpoints=last`: the run's ModelCheckpoint keeps no best file, so the trial
    checkpoint claims none, and the run reports its last checkpoint, not a best one."""
    trial = tmp_path / "tune"
    cfg = _cfg(tiny, tmp_path, 2, "train.keep_checkpoints=last")
    result = _fit_reporting_to(trial, cfg, tmp_path)
    assert result.outcome == "completed"
    assert result.best_checkpoint is None and result.last_checkpoint is not None
    for epoch in (0, 1):
        meta = json.loads((trial / f"epoch-{epoch}" / META_FILE).read_text())
        assert meta["best_checkpoint"] is None
        assert not (trial / f"epoch-{epoch}" / BEST_FILE).exists()
