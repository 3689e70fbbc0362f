"""Losses and metrics chosen by a task's TaskSpec, computed on valid (unpadded) steps only.

Masking happens once, in `valid_pairs`, so no loss or metric can see padding: padding a
batch further never changes a loss (tests/unit/test_objectives.py proves it).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor

from rnnlab.data.base import IGNORE_INDEX, TaskSpec


def step_mask(lengths: Tensor, max_len: int, device: torch.device) -> Tensor:
    """(B, T) bool mask of the steps inside each sequence's true length."""
    return torch.arange(max_len, device=device)[None, :] < lengths.to(device)[:, None]


def valid_pairs(
    spec: TaskSpec, preds: Tensor, targets: Tensor, lengths: Tensor
) -> tuple[Tensor, Tensor]:
    """Predictions and targets of the valid positions: (N, O) / (N,), one row per valid
    position; an MSE batch without padding keeps its (B, T, O) shape. `pair_count` counts
    the positions either way."""
    if spec.head == "many_to_one":
        if spec.loss == "mse":
            return preds.reshape(preds.shape[0], -1), targets.reshape(preds.shape[0], -1).to(
                preds.dtype
            )
        return preds, targets
    if spec.loss == "mse" and bool((lengths == preds.shape[1]).all()):
        # No padding in this batch: every step is valid and the (B, T, O) tensors are the
        # pairs as they are, without a boolean gather (a copy) or views to flatten them.
        same = targets.shape == preds.shape
        return preds, (targets if same else targets.reshape(preds.shape)).to(preds.dtype)
    mask = step_mask(lengths, preds.shape[1], preds.device)
    if spec.loss == "cross_entropy":
        mask = mask & (targets != IGNORE_INDEX)
        return preds[mask], targets[mask]
    p = preds[mask]
    return p, targets[mask].reshape(p.shape).to(p.dtype)


def pair_count(preds: Tensor) -> int:
    """The number of valid positions in `valid_pairs`' predictions (all but the last axis)."""
    return preds.numel() // preds.shape[-1] if preds.ndim else 1


def loss_fn(spec: TaskSpec, preds: Tensor, targets: Tensor) -> Tensor:
    """Mean loss over valid pairs; the loss is computed in fp32 even under mixed precision."""
    if spec.loss == "mse":
        return F.mse_loss(preds.float(), targets.float())
    return F.cross_entropy(preds.float(), targets)


MetricFactory = Callable[[TaskSpec], torchmetrics.Metric]

METRICS: dict[str, MetricFactory] = {
    "mse": lambda spec: torchmetrics.MeanSquaredError(),
    "mae": lambda spec: torchmetrics.MeanAbsoluteError(),
    "accuracy": lambda spec: torchmetrics.classification.MulticlassAccuracy(
        num_classes=spec.output_size, average="micro"
    ),
    "macro_f1": lambda spec: torchmetrics.classification.MulticlassF1Score(
        num_classes=spec.output_size, average="macro"
    ),
}

# Metrics that are functions of the mean cross-entropy (nats) rather than their own state.
DERIVED_FROM_LOSS: dict[str, Callable[[float], float]] = {
    "perplexity": lambda nats: math.exp(min(nats, 700.0)),
    "bpc": lambda nats: nats / math.log(2.0),
}


class LossMean:
    """Mean of per-batch losses, each weighted by its batch's count of valid targets, summed
    over the ranks of a distributed run when it is computed.

    Not a torchmetrics Metric, though it did the same job as one: torchmetrics' wrappers around
    update, compute and reset (device checks, sync contexts, caches, a cloned default per
    state) made update, compute and reset take 0.51 ms of a 43 ms parity epoch; without
    them they take 0.25 ms (docs/benchmarks.md). Not `torchmetrics.MeanMetric` either: its NaN check reads
    two flags back from the device on every update and, by default, drops NaN values, which
    would hide a diverging validation loss. Here a NaN stays in the mean, as it should.

    Losses already read back to the host (training does, to catch divergence) are summed as
    numbers; the others are summed on their device, with no host sync until `compute`.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._host_total = 0.0
        self._device_total: Tensor | None = None
        self.count = 0

    def update(self, value: Tensor, count: int) -> None:
        term = value.detach().double() * count
        self._device_total = term if self._device_total is None else self._device_total + term
        self.count += count

    def add(self, value: float, count: int) -> None:
        self._host_total += value * count
        self.count += count

    def compute(self, device: torch.device) -> float:
        """The mean over every rank; `device` is where a collective may put its tensor (the
        process group's backend decides: gloo takes CPU tensors, NCCL only CUDA ones)."""
        total = torch.tensor([self._host_total, float(self.count)], dtype=torch.float64)
        if self._device_total is not None:
            total = total.to(self._device_total.device)
            total[0] += self._device_total
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            total = total.to(device)
            torch.distributed.all_reduce(total)
        summed, count = total.tolist()
        return summed / count


def is_the_loss(spec: TaskSpec, metric: str) -> bool:
    """A metric that is the task's own loss (MSE under an MSE loss) is read from the loss's
    mean instead of being accumulated a second time: same value, half the work per step."""
    return metric == "mse" and spec.loss == "mse"


class EpochMetrics(torch.nn.Module):
    """Accumulates a stage's loss (weighted by valid targets) and metrics over an epoch."""

    def __init__(self, spec: TaskSpec) -> None:
        super().__init__()
        unknown = [m for m in spec.metrics if m not in METRICS and m not in DERIVED_FROM_LOSS]
        if unknown:
            raise ValueError(
                f"unknown metric(s) {unknown}; known: {sorted([*METRICS, *DERIVED_FROM_LOSS])}"
            )
        self.spec = spec
        self.loss = LossMean()
        self.metrics = torch.nn.ModuleDict(
            {
                name: METRICS[name](spec)
                for name in spec.metrics
                if name in METRICS and not is_the_loss(spec, name)
            }
        )

    def update(
        self, loss: Tensor, preds: Tensor, targets: Tensor, loss_value: float | None = None
    ) -> None:
        """`loss_value`: the loss as a number, where the caller has already read it back
        (training does, to catch divergence); it is summed on the host, which saves the
        tensor arithmetic of every step."""
        count = pair_count(preds)
        if loss_value is None:
            self.loss.update(loss, count)
        else:
            self.loss.add(loss_value, count)
        if self.metrics:
            detached = preds.detach().float()
            for metric in self.metrics.values():
                metric.update(detached, targets)

    def compute(self, prefix: str, device: torch.device | None = None) -> dict[str, float]:
        """The epoch's values under `prefix/`; `device` is the module's, where a distributed
        run sums the loss (not kept here as a buffer: DDP would broadcast it every step)."""
        out: dict[str, float] = {}
        if not self.loss.count:
            return out
        loss = self.loss.compute(device or torch.device("cpu"))
        out[f"{prefix}/loss"] = loss
        for name in self.spec.metrics:
            if name in self.metrics:
                out[f"{prefix}/{name}"] = float(self.metrics[name].compute())
            elif is_the_loss(self.spec, name):
                out[f"{prefix}/{name}"] = loss
            elif name in DERIVED_FROM_LOSS:
                out[f"{prefix}/{name}"] = DERIVED_FROM_LOSS[name](loss)
        return out

    def reset(self) -> None:
        self.loss.reset()
        for metric in self.metrics.values():
            metric.reset()
