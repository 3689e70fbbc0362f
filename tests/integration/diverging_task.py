"""A test-only task for `task._target_`: the adding problem with NaN targets.

Every model's loss is NaN at its first training step, so divergence is deterministic
(no reliance on a learning rate that happens to blow up on this machine's floats).
"""

from __future__ import annotations

import torch

from rnnlab.data import AddingDataModule


class NanTargetAdding(AddingDataModule):
    def generate(
        self, num: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = super().generate(num, seq_len, generator)
        return inputs, torch.full_like(targets, float("nan"))
