"""What every task hands the rest of rnnlab: a TaskSpec, batches with true lengths, a DataModule.

The model, the loss and the metrics are chosen from the TaskSpec alone, so a new task
(built in or the user's own, via `task._target_`) only has to describe itself here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, NamedTuple

import pytorch_lightning as pl
import torch

from rnnlab.config import TaskConfigBase

IGNORE_INDEX = -100  # padded class targets; torch's cross_entropy skips it by default


@dataclass(frozen=True)
class TaskSpec:
    """How a task's sequences look and how they are scored."""

    head: Literal["many_to_one", "many_to_many"]
    loss: Literal["mse", "cross_entropy"]
    input_kind: Literal["real", "tokens"]
    input_size: int  # features per step (real) or vocabulary size (tokens)
    output_size: int  # regression targets per prediction, or number of classes
    metrics: tuple[str, ...] = ()  # names from rnnlab.training.objectives.METRICS
    monitor: str = "val/loss"  # the validation quantity sweeps and early stopping follow
    monitor_mode: Literal["min", "max"] = "min"
    baselines: dict[str, float] = field(default_factory=dict)  # e.g. {"mse": 0.167}
    padding_idx: int | None = None  # token id used for padding inputs, if any
    # Consecutive batches continue each other's sequences (language modelling): the module
    # carries the hidden state across them, detached (truncated BPTT).
    stateful: bool = False
    # MASE's denominator: the in-sample MAE of the seasonal-naive forecast on the training split.
    mase_scale: float | None = None


class SequenceBatch(NamedTuple):
    """A padded batch. `lengths` are the true lengths, on the CPU (pack_padded_sequence wants that).

    inputs:  (B, T, F) float for real-valued steps, (B, T) long for tokens
    targets: many_to_one: (B,) long or (B, O) float
             many_to_many: (B, T) long padded with IGNORE_INDEX, or (B, T, O) float
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor


class SequenceDataModule(pl.LightningDataModule):
    """Base of every task. Subclasses set `Config` and implement `spec` and the loaders."""

    Config: ClassVar[type[TaskConfigBase]] = TaskConfigBase

    def __init__(self, cfg: TaskConfigBase, batch_size: int, seed: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.batch_size = batch_size
        self.seed = seed

    @property
    def spec(self) -> TaskSpec:
        raise NotImplementedError

    @classmethod
    def check(cls, cfg: TaskConfigBase) -> None:
        """Raise ConfigError (one line) if the task's inputs (e.g. user files) are unusable.

        Called by the CLI before any run or folder exists; cheap checks only. By default the
        config checks itself (`TaskConfigBase.check_inputs`), which the built-in tasks do
        without torch; a user's task may override either.
        """
        cfg.check_inputs()

    def describe(self) -> dict[str, Any]:
        """Extra facts worth logging as params (dataset sizes, vocabulary size)."""
        return {}

    def artifacts(self, folder: Path) -> list[Path]:
        """Write files worth keeping with the run (e.g. vocabularies) into `folder`."""
        return []
