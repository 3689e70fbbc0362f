"""Lightning's MLFlowLogger, writing metrics in batches at most every few seconds.

Each MLflow write blocks on the store (tens of ms on SQLite); on small models that was
most of an epoch (docs/benchmarks.md). Metrics are buffered and written together when
`flush_every_s` has passed, when a sweep trial checkpoints (so a retried trial never misses
an epoch it has a checkpoint for: see sweep/trial.py), and when Lightning finalizes the logger — which it does
at the end of every stage and on any exception, divergence included.

Flushing before a trial's checkpoint means a trial killed between the two logs an epoch
that its retry, resuming from the checkpoint before, trains again. MLflow cannot replace a
logged value, so a resumed run is given the steps it already holds (`skip_steps`) and keeps
the first value of each: one point per epoch, as on a run that was never interrupted.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.utilities import rank_zero_only


class BufferedMLFlowLogger(MLFlowLogger):
    def __init__(
        self,
        *args: Any,
        flush_every_s: float = 10.0,
        skip_steps: Mapping[str, set[int]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.flush_every_s = flush_every_s
        self.skip_steps = dict(skip_steps or {})
        self._buffer: list[Any] = []
        self._last_flush = time.monotonic()

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        step = step or 0
        for key, value in metrics.items():
            if isinstance(value, str) or step in self.skip_steps.get(key, ()):
                continue
            self._buffer.append(Metric(key=key, value=float(value), timestamp=now, step=step))
        if time.monotonic() - self._last_flush >= self.flush_every_s:
            self.flush()

    @rank_zero_only
    def flush(self) -> None:
        buffer, self._buffer = self._buffer, []
        for i in range(0, len(buffer), 1000):
            self.experiment.log_batch(run_id=self.run_id, metrics=buffer[i : i + 1000])
        self._last_flush = time.monotonic()

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        # Flush only: the tracking layer (train_tracked, or a sweep's driver) owns the run's
        # status and outcome; Lightning would mark a run stopped by Tune as FAILED.
        self.flush()
