"""Optimizers and learning-rate schedules named in `train.*`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from rnnlab.config import TrainConfig


def build_optimizer(
    train: TrainConfig, params: Iterable[torch.nn.Parameter]
) -> torch.optim.Optimizer:
    if train.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=train.lr, momentum=train.momentum, weight_decay=train.weight_decay
        )
    if train.optimizer == "adam":
        return torch.optim.Adam(params, lr=train.lr, weight_decay=train.weight_decay)
    return torch.optim.AdamW(params, lr=train.lr, weight_decay=train.weight_decay)


def build_scheduler(
    train: TrainConfig, optimizer: torch.optim.Optimizer, monitor: str
) -> dict[str, Any] | None:
    """A Lightning lr_scheduler dict, or None for a constant rate without warm-up."""
    sched = train.lr_schedule
    main: torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None
    if sched.name == "cosine":
        main = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(1, train.max_epochs - sched.warmup_epochs)
        )
    elif sched.name == "step" and sched.decay_start is not None:
        main = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _delayed_step(sched.decay_start, sched.step_size, sched.gamma)
        )
    elif sched.name == "step":
        main = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=sched.step_size, gamma=sched.gamma
        )
    elif sched.name == "plateau":
        # Plateau needs a monitored value and cannot be chained with warm-up.
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=sched.gamma, patience=2
        )
        return {"scheduler": plateau, "monitor": monitor, "interval": "epoch"}
    else:
        main = None
    if sched.warmup_epochs > 0:
        warmup = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=0.1, total_iters=sched.warmup_epochs
        )
        if main is None:
            return {"scheduler": warmup, "interval": "epoch"}
        main = torch.optim.lr_scheduler.SequentialLR(
            optimizer, [warmup, main], milestones=[sched.warmup_epochs]
        )
    if main is None:
        return None
    return {"scheduler": main, "interval": "epoch"}


def _delayed_step(start: int, step_size: int, gamma: float) -> Any:
    """lr factor at epoch e: 1 before `start`, then gamma more every `step_size` epochs."""

    def factor(epoch: int) -> float:
        return 1.0 if epoch < start else gamma ** ((epoch - start) // step_size + 1)

    return factor
