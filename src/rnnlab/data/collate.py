"""Pad a list of variable-length examples into one `SequenceBatch` that keeps the true lengths.

The true lengths travel with every batch so the model can pack sequences (cuDNN skips the
padding) and so a many-to-one head reads the last *real* step instead of a padding step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from rnnlab.data.base import IGNORE_INDEX, SequenceBatch, TaskSpec
from rnnlab.data.stacked import StackedExamples

Example = tuple[torch.Tensor, torch.Tensor]  # (inputs, target) of one sequence


def pad_collate(
    examples: Sequence[Example],
    padding_value: int | float = 0,
    per_step_targets: bool = False,
) -> SequenceBatch:
    """Stack `(inputs, target)` examples, padding the time axis to the longest one.

    inputs are `(T_i, F)` floats or `(T_i,)` token ids and are padded with `padding_value`.
    Per-step (many-to-many) targets are padded with `IGNORE_INDEX` when they are class ids,
    so cross-entropy skips the padded steps, and with 0 when they are real-valued (the loss
    must then mask with `lengths`). Per-sequence targets are stacked as they are.
    """
    if not examples:
        raise ValueError("pad_collate got an empty list of examples")
    if isinstance(examples, StackedExamples):
        return _stacked_batch(examples, per_step_targets)
    inputs = [x for x, _ in examples]
    targets = [y for _, y in examples]
    steps = [x.shape[0] for x in inputs]
    lengths = torch.tensor(steps, dtype=torch.long)
    same_length = steps.count(steps[0]) == len(steps)
    # Fixed-length tasks (adding, copy, digits) take the cheap path: nothing to pad.
    if same_length:
        batch_inputs = torch.stack(inputs)
    else:
        batch_inputs = pad_sequence(inputs, batch_first=True, padding_value=float(padding_value))
    if per_step_targets:
        target_lengths = [y.shape[0] for y in targets]
        if target_lengths != steps:
            raise ValueError(
                "per-step targets must have one entry per input step; got input lengths "
                f"{steps} and target lengths {target_lengths}"
            )
        if same_length:
            batch_targets = torch.stack(targets)
        else:
            fill = 0.0 if targets[0].is_floating_point() else float(IGNORE_INDEX)
            batch_targets = pad_sequence(targets, batch_first=True, padding_value=fill)
    else:
        batch_targets = torch.stack(targets)
    return SequenceBatch(batch_inputs, batch_targets, lengths)


def _stacked_batch(examples: StackedExamples, per_step_targets: bool) -> SequenceBatch:
    """The batch of examples that are already stacked: all of one length, nothing to pad."""
    inputs, targets = examples.tensors
    steps = int(inputs.shape[1])
    if per_step_targets and int(targets.shape[1]) != steps:
        raise ValueError(
            "per-step targets must have one entry per input step; got inputs of "
            f"{steps} steps and targets of {int(targets.shape[1])}"
        )
    return SequenceBatch(inputs, targets, torch.full((len(inputs),), steps, dtype=torch.long))


@dataclass(frozen=True)
class PadCollate:
    """`pad_collate` with its options fixed, for `DataLoader(collate_fn=...)`.

    A module-level dataclass rather than a lambda or closure so it pickles, which
    `ddp_spawn` and Ray workers need.
    """

    padding_value: int | float = 0
    per_step_targets: bool = False

    @classmethod
    def from_spec(cls, spec: TaskSpec) -> PadCollate:
        """The collate a spec implies: its padding id, per-step targets if many-to-many."""
        padding = spec.padding_idx if spec.padding_idx is not None else 0
        return cls(padding_value=padding, per_step_targets=spec.head == "many_to_many")

    def __call__(self, examples: Sequence[Example]) -> SequenceBatch:
        return pad_collate(examples, self.padding_value, self.per_step_targets)


def padding_fraction(lengths: torch.Tensor | Sequence[int]) -> float:
    """Share of a padded batch's steps that are padding: 1 - sum(lengths) / (B * max(lengths)).

    The compute a recurrent net spends on a batch grows with B * max length, so this is the
    share of that compute wasted on padding; bucketing by length exists to keep it low.
    """
    lengths = torch.as_tensor(lengths, dtype=torch.float64)
    if lengths.numel() == 0:
        return 0.0
    longest = float(lengths.max())
    if longest <= 0:
        return 0.0
    return 1.0 - float(lengths.sum()) / (lengths.numel() * longest)
