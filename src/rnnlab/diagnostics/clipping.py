"""Clipping telemetry: how often clipping fired and what it did to the gradient norm.

The module's `configure_gradient_clipping` records, for every optimizer step, the global
gradient norm before clipping (after the AMP scaler unscaled it) and whether the step was
clipped; this callback asks it to record the norm after clipping too
(`record_clipped_norms`) and summarises them per epoch:

- `clip/fraction`: the share of steps clipped (the same value as `train/clip_fraction`);
- `clip/norm_before_p50`, `_p90`, `_max` and `clip/norm_after_p50`, `_p90`, `_max`:
  quantiles of the global gradient norm before and after clipping, over finite values;
- under a GradScaler (`16-mixed`): `clip/loss_scale` at the epoch's end and
  `clip/skipped_steps`, the steps whose gradients were not finite (the scaler skips
  exactly those; the norm before clipping tells which). bf16 needs no scaler.

Each step's values stay on the device until the epoch ends, so no step waits on a sync.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from rnnlab.diagnostics.sink import EpochLog, emit


def quantiles(values: np.ndarray, prefix: str) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {}
    return {
        f"{prefix}_p50": float(np.quantile(finite, 0.5)),
        f"{prefix}_p90": float(np.quantile(finite, 0.9)),
        f"{prefix}_max": float(finite.max()),
    }


def grad_scaler(trainer: pl.Trainer) -> Any:
    return getattr(trainer.precision_plugin, "scaler", None)


@dataclass
class ClipHistory:
    """Every optimizer step of the fit so far, on the CPU (for plots)."""

    steps: list[np.ndarray] = field(default_factory=list)
    before: list[np.ndarray] = field(default_factory=list)
    after: list[np.ndarray] = field(default_factory=list)
    clipped: list[np.ndarray] = field(default_factory=list)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        def cat(parts: list[np.ndarray], dtype: Any = float) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return (
            cat(self.steps, int),
            cat(self.before),
            cat(self.after),
            cat(self.clipped, bool),
        )


class ClippingTelemetry(Callback):
    """Per-epoch clip fraction and quantiles of the gradient norm before and after clipping."""

    def __init__(
        self, threshold: float | None = None, mode: str = "norm", epoch_log: EpochLog | None = None
    ) -> None:
        self.epoch_log = epoch_log
        self.threshold = threshold
        self.mode = mode
        self.history = ClipHistory()
        self.epochs: list[dict[str, float]] = []

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if hasattr(pl_module, "record_clipped_norms"):
            pl_module.record_clipped_norms = True

    def _epoch_arrays(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        before = list(getattr(pl_module, "_grad_norms", []))
        if not before:
            return None
        clipped = list(getattr(pl_module, "_clipped", []))
        after = list(getattr(pl_module, "_grad_norms_after", []))
        n = len(before)
        parts = [torch.stack(before).float(), torch.stack(clipped).float()]
        if len(after) == n:
            parts.append(torch.stack(after).float())
        host = torch.cat(parts).cpu().double().numpy()  # one transfer per epoch
        b, c = host[:n], host[n : 2 * n] > 0.5
        a = host[2 * n :] if len(after) == n else b.copy()
        self.history.steps.append(np.arange(trainer.global_step - n, trainer.global_step))
        self.history.before.append(b)
        self.history.after.append(a)
        self.history.clipped.append(c)
        return b, a, c

    def summarize(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        arrays = self._epoch_arrays(trainer, pl_module)
        if arrays is None:
            return {}
        before, after, clipped = arrays
        metrics = {"clip/fraction": float(clipped.mean())}
        metrics.update(quantiles(before, "clip/norm_before"))
        metrics.update(quantiles(after, "clip/norm_after"))
        scaler = grad_scaler(trainer)
        if scaler is not None and scaler.is_enabled():
            metrics["clip/loss_scale"] = float(scaler.get_scale())
            metrics["clip/skipped_steps"] = float((~np.isfinite(before)).sum())
        return metrics

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = self.summarize(trainer, pl_module)
        if not metrics:
            return
        self.epochs.append({**metrics, "epoch": float(trainer.current_epoch)})
        emit(trainer, self.epoch_log, metrics)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._epoch_arrays(trainer, pl_module)  # the failed epoch's steps, for the plots
