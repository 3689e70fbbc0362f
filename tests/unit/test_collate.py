"""pad_collate keeps true lengths and pads so that padding cannot leak into the loss."""

from __future__ import annotations

import pytest
import torch

from rnnlab.data import IGNORE_INDEX, PadCollate, TaskSpec, pad_collate, padding_fraction


def _real_examples() -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.ones(n, 3), torch.tensor([float(n)])) for n in (4, 2, 5)]


def test_collate_keeps_true_lengths_as_cpu_long_and_pads_real_inputs_with_zero() -> None:
    batch = pad_collate(_real_examples())
    assert batch.inputs.shape == (3, 5, 3)
    assert batch.lengths.tolist() == [4, 2, 5]
    assert batch.lengths.dtype == torch.long and batch.lengths.device.type == "cpu"
    assert batch.inputs[1, 2:].abs().sum() == 0
    assert batch.inputs[1, :2].eq(1).all()
    assert batch.targets.shape == (3, 1)


def test_per_step_class_targets_are_padded_with_ignore_index() -> None:
    examples = [(torch.arange(1, n + 1), torch.arange(1, n + 1)) for n in (3, 1, 4)]
    batch = PadCollate(padding_value=7, per_step_targets=True)(examples)
    assert batch.inputs.shape == (3, 4)
    assert batch.inputs[1].tolist() == [1, 7, 7, 7]
    assert batch.targets[1].tolist() == [1, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    assert batch.targets[0, 3].item() == IGNORE_INDEX
    assert batch.lengths.tolist() == [3, 1, 4]


def test_per_step_real_targets_are_padded_with_zero() -> None:
    examples = [(torch.ones(n, 2), torch.full((n, 1), 3.0)) for n in (2, 3)]
    batch = pad_collate(examples, per_step_targets=True)
    assert batch.targets.shape == (2, 3, 1)
    assert batch.targets[0, 2, 0].item() == 0.0


def test_per_step_targets_must_match_input_lengths() -> None:
    with pytest.raises(ValueError, match="one entry per input step"):
        pad_collate([(torch.ones(3), torch.ones(2, dtype=torch.long))], per_step_targets=True)


def test_collate_from_spec_uses_padding_idx_and_head() -> None:
    spec = TaskSpec("many_to_many", "cross_entropy", "tokens", 10, 10, padding_idx=3)
    assert PadCollate.from_spec(spec) == PadCollate(padding_value=3, per_step_targets=True)
    spec = TaskSpec("many_to_one", "mse", "real", 2, 1)
    assert PadCollate.from_spec(spec) == PadCollate(padding_value=0, per_step_targets=False)


def test_padding_fraction_is_share_of_padded_steps() -> None:
    assert padding_fraction([4, 4]) == 0.0
    assert padding_fraction(torch.tensor([4, 2])) == pytest.approx(0.25)
    assert padding_fraction([]) == 0.0
