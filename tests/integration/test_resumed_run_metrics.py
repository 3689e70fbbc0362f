"""A run resumed from a checkpoint older than its last logged epoch logs each epoch once.

This is what a sweep trial killed between flushing an epoch's metrics and handing Tune that
epoch's checkpoint goes through on its retry (sweep/trial.py; the SIGKILL test in
test_sweep_faults.py catches it only when the kill lands in that window).
"""

from __future__ import annotations

from pathlib import Path

from pytorch_lightning.callbacks import Callback

from rnnlab.cli import load_run_config
from rnnlab.training.tracked import train_tracked


class _CheckpointAt(Callback):
    """Writes a resumable checkpoint at the end of one epoch, as a sweep trial's reporter does."""

    def __init__(self, epoch: int, path: Path) -> None:
        self.epoch, self.path = epoch, path

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.save_checkpoint(self.path)


def test_a_resumed_run_logs_each_epoch_once_where_it_trains_one_again(tiny, tmp_path: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = [*tiny, "train.early_stopping.enabled=false", f"tracking.uri={uri}"]
    ckpt = tmp_path / "epoch1.ckpt"
    # The interrupted attempt: it logged epochs 0, 1 and 2, and its checkpoint is epoch 1's.
    first = train_tracked(
        load_run_config("train", [*common, "train.max_epochs=3"]),
        extra_callbacks=[_CheckpointAt(1, ckpt)],
        run_test=False,
        close_run=False,
    )
    # The retry: epoch 2 again, then epoch 3.
    second = train_tracked(
        load_run_config("train", [*common, "train.max_epochs=4"]),
        handle=first.run,
        resume_from=str(ckpt),
        run_test=False,
    )
    assert [round(h["epoch"]) for h in second.fit.history] == [2, 3]
    client = MlflowClient(tracking_uri=uri)
    for key in ("val/loss", "train/loss", "lr"):
        steps = sorted(m.step for m in client.get_metric_history(first.run.run_id, key))
        assert steps == [0, 1, 2, 3], (key, steps)
