"""The one LightningModule every run trains: a RecurrentNet scored by its task's objective.

Everything a researcher wants per epoch (losses, task metrics, learning rate, gradient
norm before clipping, fraction of steps clipped) is accumulated on-device during the
epoch and logged once, in a single MLflow batch, when validation ends.
"""

from __future__ import annotations

import math
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

from rnnlab.config import RunConfig
from rnnlab.data.base import SequenceBatch, TaskSpec
from rnnlab.training.objectives import EpochMetrics, loss_fn, valid_pairs
from rnnlab.training.optim import build_optimizer, build_scheduler


def publish(trainer: pl.Trainer, metrics: dict[str, float]) -> None:
    """Put epoch metrics where callbacks read them (`trainer.callback_metrics`).

    Written directly rather than through `self.log_dict`: the values are already reduced
    (torchmetrics states, synced across ranks on compute), and `log`'s per-key bookkeeping
    was a measurable share of a small model's epoch (docs/benchmarks.md). Lightning clears
    this dict only when a fit, validate or test run starts.
    """
    trainer.callback_metrics.update({k: torch.tensor(float(v)) for k, v in metrics.items()})


class DivergedError(RuntimeError):
    """The loss became NaN or infinite: the run is over, and that is a result, not a crash."""

    def __init__(self, step: int, loss: float, last_finite_loss: float | None) -> None:
        super().__init__(f"loss became {loss} at step {step}")
        self.step = step
        self.loss = loss
        self.last_finite_loss = last_finite_loss


class SequenceModule(pl.LightningModule):
    def __init__(self, cfg: RunConfig, spec: TaskSpec, net: torch.nn.Module) -> None:
        super().__init__()
        # The config travels inside every checkpoint, so a checkpoint describes itself;
        # logger=False because the tracking layer logs the flattened config itself.
        self.save_hyperparameters({"config": cfg.to_dict()}, logger=False)
        self.cfg = cfg
        self.spec = spec
        self.net = net
        self.train_metrics = EpochMetrics(spec)
        self.val_metrics = EpochMetrics(spec)
        self.test_metrics = EpochMetrics(spec)
        self._grad_norms: list[Tensor] = []
        self._clipped: list[Tensor] = []
        # issue 5 (diagnostics.clipping): the norm after clipping, recorded only when asked.
        self.record_clipped_norms = False
        self._grad_norms_after: list[Tensor] = []
        self.last_finite_loss: float | None = None
        self.last_grad_norm: float | None = None
        self.history: list[dict[str, float]] = []
        self.epoch_metrics: dict[str, float] = {}
        self._epoch_lr: float | None = None  # the rate of the epoch in progress

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Move inputs and targets, and leave `lengths` on the CPU.

        Packing needs CPU lengths and the no-padding checks read them: on a GPU, lengths
        moved there came back with a host sync in every forward and every loss.
        """
        if isinstance(batch, SequenceBatch):
            if batch.inputs.device == device and batch.targets.device == device:
                return batch  # on the CPU: what `.to` would return, without two calls
            # As Lightning's move_data_to_device does, minus its generic walk of the batch.
            non_blocking = device.type not in ("cpu", "mps")
            return SequenceBatch(
                batch.inputs.to(device, non_blocking=non_blocking),
                batch.targets.to(device, non_blocking=non_blocking),
                batch.lengths,
            )
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def forward(self, inputs: Tensor, lengths: Tensor) -> Tensor:
        return self.net(inputs, lengths).predictions

    def _scored(self, batch: SequenceBatch, stage: str) -> tuple[Tensor, Tensor, Tensor]:
        """(loss, predictions, targets) over the batch's valid steps; `stage` is train, val
        or test (a language model carries a state per stage)."""
        inputs, targets, lengths = batch
        preds = self.net(inputs, lengths).predictions
        p, t = valid_pairs(self.spec, preds, targets, lengths)
        return loss_fn(self.spec, p, t), p, t

    def _stage_of(self, metrics: EpochMetrics) -> str:
        if metrics is self.train_metrics:
            return "train"
        return "val" if metrics is self.val_metrics else "test"

    def _shared_step(self, batch: SequenceBatch, metrics: EpochMetrics) -> Tensor:
        loss, p, t = self._scored(batch, self._stage_of(metrics))
        metrics.update(loss, p, t)
        return loss

    def training_step(self, batch: SequenceBatch, batch_idx: int) -> Tensor:
        loss, p, t = self._scored(batch, "train")
        value = float(loss.detach())
        if not math.isfinite(value):
            if self._grad_norms:  # the epoch summary that would set it has not run yet
                self.last_grad_norm = float(self._grad_norms[-1])
            raise DivergedError(self.global_step, value, self.last_finite_loss)
        self.last_finite_loss = value
        # The divergence check has already read the loss back: the epoch mean takes the number.
        self.train_metrics.update(loss, p, t, loss_value=value)
        return loss

    def validation_step(self, batch: SequenceBatch, batch_idx: int) -> None:
        self._shared_step(batch, self.val_metrics)

    def test_step(self, batch: SequenceBatch, batch_idx: int) -> None:
        self._shared_step(batch, self.test_metrics)

    # --- gradients -------------------------------------------------------------------
    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: Any = None,
        gradient_clip_algorithm: Any = None,
    ) -> None:
        """Clip from our own config and record the norm *before* clipping.

        Lightning calls this after the AMP scaler has unscaled the gradients, so the
        threshold means the same thing at every precision.
        """
        params = [
            p for group in optimizer.param_groups for p in group["params"] if p.grad is not None
        ]
        if not params:
            return
        grads = [p.grad for p in params]
        norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
        clip = self.cfg.train.clip
        if clip.mode == "norm":
            torch.nn.utils.clip_grads_with_norm_(params, clip.threshold, norm)
            clipped = norm > clip.threshold
        elif clip.mode == "value":
            clipped = torch.stack([g.detach().abs().max() for g in grads]).max() > clip.threshold
            torch.nn.utils.clip_grad_value_(params, clip.threshold)
        else:
            clipped = torch.zeros((), dtype=torch.bool, device=norm.device)
        self._grad_norms.append(norm.detach())
        self._clipped.append(clipped.detach())
        if self.record_clipped_norms:  # issue 5: the norm the optimizer steps with
            self._grad_norms_after.append(self._norm_after_clipping(norm, grads).detach())

    def _norm_after_clipping(self, norm: Tensor, grads: list[Tensor]) -> Tensor:
        clip = self.cfg.train.clip
        if clip.mode == "norm":  # clip_grads_with_norm_ scales by min(1, max_norm / (norm + 1e-6))
            return norm * torch.clamp(clip.threshold / (norm + 1e-6), max=1.0)
        if clip.mode == "value":  # the gradients were clipped in place
            return torch.nn.utils.get_total_norm(grads, norm_type=2.0)
        return norm

    # --- epoch bookkeeping -------------------------------------------------------------
    def on_train_epoch_start(self) -> None:
        # The rate this epoch trains at: by validation's end Lightning has already stepped
        # an epoch-interval scheduler, so reading it then would log the next epoch's rate.
        if self._trainer is not None and self.trainer.optimizers:
            self._epoch_lr = float(self.trainer.optimizers[0].param_groups[0]["lr"])
        self.train_metrics.reset()
        self._grad_norms.clear()
        self._clipped.clear()
        self._grad_norms_after.clear()

    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()

    def _gradient_summary(self) -> dict[str, float]:
        if not self._grad_norms:
            return {}
        # One read-back of every step's norm and clip flag, then plain arithmetic: a tensor
        # op per statistic cost more than the statistics (docs/benchmarks.md).
        steps = len(self._grad_norms)
        values = torch.cat(
            [torch.stack(self._grad_norms).float(), torch.stack(self._clipped).float()]
        ).tolist()
        finite = [v for v in values[:steps] if math.isfinite(v)]
        out = {"train/clip_fraction": sum(values[steps:]) / steps}
        if finite:
            out["train/grad_norm"] = math.fsum(finite) / len(finite)
            out["train/grad_norm_max"] = max(finite)
            self.last_grad_norm = finite[-1]
        return out

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        metrics = {
            **self.train_metrics.compute("train", self.device),
            **self.val_metrics.compute("val", self.device),
        }
        metrics.update(self._gradient_summary())
        metrics["lr"] = (
            self._epoch_lr
            if self._epoch_lr is not None
            else float(self.trainer.optimizers[0].param_groups[0]["lr"])
        )
        metrics["epoch"] = float(self.current_epoch)
        self.epoch_metrics = metrics
        self.history.append(metrics)
        # callback_metrics feed EarlyStopping, ModelCheckpoint and a sweep's reporter.
        publish(self.trainer, metrics)
        for lg in self.loggers:
            lg.log_metrics(metrics, step=self.current_epoch)

    def on_test_epoch_start(self) -> None:
        self.test_metrics.reset()

    def on_test_epoch_end(self) -> None:
        # Only into callback_metrics: the tracking layer logs test metrics once, at the step
        # after the last epoch (a ddp_spawn test runs in fresh ranks whose epoch is 0).
        publish(self.trainer, self.test_metrics.compute("test", self.device))

    def configure_optimizers(self) -> Any:
        optimizer = build_optimizer(self.cfg.train, self.parameters())
        scheduler = build_scheduler(self.cfg.train, optimizer, monitor=self.spec.monitor)
        if scheduler is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
