"""Callbacks that record what the data pipeline did, in the run: padding share, vocabularies.

They live outside the module and the loaders (STYLE.md: behaviour through callbacks): the
padding share is measured on the batches training really used (after `limit_batches`, under
any sampler or worker count), and the files go to every MLflow logger the trainer has.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from rnnlab.training.module import publish

PADDING_METRIC = "train/padding_fraction"


class PaddingFraction(Callback):
    """Logs `train/padding_fraction` each epoch: 1 - real steps / padded steps over its batches.

    It is the share of the recurrent compute spent on padding; bucketing exists to keep it
    low (see benchmarks/bucketing.py).
    """

    def __init__(self) -> None:
        # Each batch's lengths, summed once at the epoch's end: the per-batch work stays a
        # list append, with no tensor arithmetic and no device sync.
        self._lengths: list[torch.Tensor] = []
        self._padded = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._lengths, self._padded = [], 0

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        try:
            inputs, _, lengths = batch
        except (TypeError, ValueError):
            return  # not a SequenceBatch: nothing to measure
        self._lengths.append(lengths)
        self._padded += int(inputs.shape[0]) * int(inputs.shape[1])

    @property
    def value(self) -> float | None:
        if not self._padded:
            return None
        return 1.0 - float(torch.cat(self._lengths).sum()) / self._padded

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = self.value
        if value is None:
            return
        # Straight into callback_metrics, as the module's epoch metrics go (module.publish):
        # `pl_module.log` walks its result collection for one number.
        publish(trainer, {PADDING_METRIC: value})
        for lg in trainer.loggers:
            lg.log_metrics({PADDING_METRIC: value}, step=trainer.current_epoch)


class DataArtifacts(Callback):
    """Stores the datamodule's files (vocabularies) with the MLflow run, under `data/`."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from pytorch_lightning.loggers import MLFlowLogger

        datamodule = getattr(trainer, "datamodule", None)
        write = getattr(datamodule, "artifacts", None)
        loggers = [lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger)]
        if not trainer.is_global_zero or not callable(write) or not loggers:
            return
        with tempfile.TemporaryDirectory(prefix="rnnlab-data-") as tmp:
            for path in write(Path(tmp)):
                for lg in loggers:
                    lg.experiment.log_artifact(lg.run_id, str(path), artifact_path="data")


def data_callbacks() -> list[Callback]:
    """The callbacks every run gets from the data side."""
    return [PaddingFraction(), DataArtifacts()]
