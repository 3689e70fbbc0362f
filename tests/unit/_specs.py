"""Task specs, and a SequenceModule around no network, that several unit tests share."""

from __future__ import annotations

import torch

from rnnlab.data.base import TaskSpec
from rnnlab.training.module import SequenceModule

SERIES = TaskSpec(
    head="many_to_many",
    loss="mse",
    input_kind="real",
    input_size=3,
    output_size=2,
    metrics=("mse", "mae"),
)
ADDING = TaskSpec(
    head="many_to_one",
    loss="mse",
    input_kind="real",
    input_size=2,
    output_size=1,
    metrics=("mse",),
)


class _Config:
    """Only what SequenceModule reads at construction."""

    def to_dict(self) -> dict:
        return {}


def bare_module(spec: TaskSpec) -> SequenceModule:
    """A SequenceModule whose network is the identity: for the module's own bookkeeping."""
    return SequenceModule(_Config(), spec, torch.nn.Identity())  # type: ignore[arg-type]
