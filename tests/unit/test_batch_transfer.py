"""Which parts of a batch the LightningModule moves to the accelerator."""

from __future__ import annotations

import torch
from tests.unit._specs import SERIES, bare_module

from rnnlab.data.base import SequenceBatch


def test_inputs_and_targets_move_and_lengths_stay_on_the_cpu() -> None:
    # "meta" stands in for a GPU: a device that is not the CPU, available everywhere.
    batch = SequenceBatch(torch.randn(4, 5, 3), torch.randn(4, 5, 2), torch.tensor([5, 3, 2, 5]))
    moved = bare_module(SERIES).transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert isinstance(moved, SequenceBatch)
    assert moved.inputs.device.type == "meta" and moved.targets.device.type == "meta"
    assert moved.lengths.device.type == "cpu"
    assert torch.equal(moved.lengths, batch.lengths)


def test_other_batches_move_whole() -> None:
    moved = bare_module(SERIES).transfer_batch_to_device([torch.ones(2)], torch.device("meta"), 0)
    assert moved[0].device.type == "meta"


def test_a_batch_already_on_the_device_is_returned_as_it_is() -> None:
    batch = SequenceBatch(torch.randn(2, 5, 3), torch.randn(2, 5, 2), torch.tensor([5, 3]))
    assert bare_module(SERIES).transfer_batch_to_device(batch, torch.device("cpu"), 0) is batch
    moved = bare_module(SERIES).transfer_batch_to_device(batch, torch.device("meta"), 0)
    assert moved is not batch and moved.inputs.device.type == "meta"
