"""Where diagnostics go: the trainer's loggers, from global rank 0 only, once per epoch.

The diagnostic callbacks hand their per-epoch metrics and tags to one `EpochLog`, which
passes the metrics to each logger's `log_metrics` in one call when the epoch ends
(`step = epoch`, like the module's own metrics; rnnlab's buffered MLflow logger then writes
them with the module's in its next batch) and writes a tag only when its value changed. A
SQLite write costs 15-60 ms on a busy machine: one per callback per epoch was a measurable
share of a short epoch. Params and artifacts go to the MLflow run behind each
`MLFlowLogger` directly. Without a logger (benchmarks, bare `fit`) the callbacks still
compute and keep everything in memory; nothing is written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


def mlflow_loggers(trainer: pl.Trainer) -> list[Any]:
    from pytorch_lightning.loggers import MLFlowLogger

    if not trainer.is_global_zero:
        return []
    return [lg for lg in trainer.loggers if isinstance(lg, MLFlowLogger) and lg.run_id]


def write_epoch(
    trainer: pl.Trainer, metrics: Mapping[str, float], tags: Mapping[str, Any] | None = None
) -> None:
    """Metrics at `step = current epoch` to every logger, tags to every MLflow run."""
    from mlflow.entities import RunTag

    if not trainer.is_global_zero:
        return
    finite = {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(v)}
    for lg in trainer.loggers:
        if finite:
            lg.log_metrics(finite, step=trainer.current_epoch)
    if tags:
        for lg in mlflow_loggers(trainer):
            lg.experiment.log_batch(lg.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_new_params(trainer: pl.Trainer, params: Mapping[str, Any]) -> None:
    """Params the run does not have yet (a resumed run keeps its initial values)."""
    from mlflow.entities import Param

    for lg in mlflow_loggers(trainer):
        existing = lg.experiment.get_run(lg.run_id).data.params
        items = [Param(k, str(v)) for k, v in params.items() if k not in existing]
        for i in range(0, len(items), 100):
            lg.experiment.log_batch(lg.run_id, params=items[i : i + 100])


def log_artifact(trainer: pl.Trainer, path: Path, artifact_path: str) -> bool:
    """Store a file with the run; False when there is no MLflow run to store it in."""
    loggers = mlflow_loggers(trainer)
    for lg in loggers:
        lg.experiment.log_artifact(lg.run_id, str(path), artifact_path)
    return bool(loggers)


class EpochLog(Callback):
    """Collects the diagnostics' metrics and tags of an epoch; writes them once at its end.

    It must come after every diagnostic callback that adds to it, so that its
    `on_train_epoch_end` (and `on_exception`, for a run that fails mid-epoch) runs last.
    """

    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}
        self.tags: dict[str, str] = {}
        self._written_tags: dict[str, str] = {}

    def add(self, metrics: Mapping[str, float], tags: Mapping[str, Any] | None = None) -> None:
        self.metrics.update(metrics)
        self.tags.update({k: str(v) for k, v in (tags or {}).items()})

    def flush(self, trainer: pl.Trainer) -> None:
        metrics, self.metrics = self.metrics, {}
        tags = {k: v for k, v in self.tags.items() if self._written_tags.get(k) != v}
        self.tags = {}
        if metrics or tags:
            write_epoch(trainer, metrics, tags)
            self._written_tags.update(tags)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.flush(trainer)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.flush(trainer)


def emit(
    trainer: pl.Trainer,
    log: EpochLog | None,
    metrics: Mapping[str, float],
    tags: Mapping[str, Any] | None = None,
) -> None:
    """Hand an epoch's diagnostics to the shared EpochLog, or write them now without one."""
    if log is not None:
        log.add(metrics, tags)
    else:
        write_epoch(trainer, metrics, tags)
