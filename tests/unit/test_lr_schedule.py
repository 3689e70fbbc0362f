"""Learning-rate schedules, including Zaremba et al.'s hold-then-decay step schedule."""

from __future__ import annotations

import pytest
import torch

from rnnlab.config import TrainConfig
from rnnlab.training.optim import build_optimizer, build_scheduler


def _rates(train: TrainConfig, epochs: int) -> list[float]:
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = build_optimizer(train, params)
    scheduler = build_scheduler(train, optimizer, monitor="val/loss")["scheduler"]
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_step_schedule_without_decay_start_is_torch_step_lr() -> None:
    train = TrainConfig(lr=1.0, lr_schedule={"name": "step", "step_size": 2, "gamma": 0.5})
    assert _rates(train, 5) == pytest.approx([1.0, 1.0, 0.5, 0.5, 0.25])


def test_decay_start_holds_the_rate_then_decays_every_step() -> None:
    # Zaremba et al. 2014, small model: lr 1 for 4 epochs, then halved every epoch.
    train = TrainConfig(
        optimizer="sgd",
        lr=1.0,
        lr_schedule={"name": "step", "step_size": 1, "gamma": 0.5, "decay_start": 4},
    )
    assert _rates(train, 7) == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.5, 0.25, 0.125])


def test_the_logged_lr_is_the_rate_each_epoch_trained_at(tmp_path) -> None:
    from rnnlab.cli import load_run_config
    from rnnlab.training.fit import fit

    cfg = load_run_config(
        "train",
        [
            "task=adding",
            "task.seq_len=10",
            "task.train_size=64",
            "task.val_size=32",
            "task.test_size=32",
            "model.hidden_size=8",
            "train.optimizer=sgd",
            "train.lr=1.0",
            "train.max_epochs=3",
            "train.early_stopping.enabled=false",
            "train.keep_checkpoints=none",
            "train.lr_schedule.name=step",
            "train.lr_schedule.step_size=1",
            f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        ],
    )
    result = fit(cfg, run_test=False)
    assert [h["lr"] for h in result.history] == pytest.approx([1.0, 0.5, 0.25])
