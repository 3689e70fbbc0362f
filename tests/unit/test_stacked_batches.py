"""Batches served stacked (one indexing call per batch) equal those built example by example."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset, default_collate

from rnnlab.cli import load_run_config
from rnnlab.data import PadCollate, pad_collate
from rnnlab.data.stacked import StackedExamples, StackedTensorDataset
from rnnlab.training.fit import build_datamodule


def _tensors() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(7, 5, 3, generator=g), torch.randint(0, 4, (7, 5), generator=g)


def _same(a: object, b: object) -> None:
    assert type(a) is type(b)
    for x, y in zip(a, b, strict=True):  # type: ignore[call-overload]
        assert torch.equal(x, y) and x.dtype == y.dtype


@pytest.mark.parametrize("per_step", [False, True])
def test_a_stacked_batch_collates_to_the_example_by_example_batch(per_step: bool) -> None:
    inputs, targets = _tensors()
    rows = [4, 0, 6, 2]
    stacked = StackedTensorDataset(inputs, targets).__getitems__(rows)
    one_by_one = [TensorDataset(inputs, targets)[r] for r in rows]
    _same(
        pad_collate(stacked, per_step_targets=per_step),
        pad_collate(one_by_one, per_step_targets=per_step),
    )


def test_stacked_examples_still_read_as_a_list_of_examples() -> None:
    inputs, targets = _tensors()
    stacked = StackedTensorDataset(inputs, targets).__getitems__([3, 1])
    assert len(stacked) == 2
    assert torch.equal(stacked[1][0], inputs[1]) and torch.equal(stacked[-1][1], targets[1])
    assert len(stacked[:1]) == 1
    with pytest.raises(IndexError):
        stacked[2]
    # A collate that walks its examples (PyTorch's default) gets what it would have got.
    _same(
        default_collate(stacked),
        default_collate([(inputs[3], targets[3]), (inputs[1], targets[1])]),
    )


def test_per_step_targets_of_another_length_are_refused_when_stacked() -> None:
    stacked = StackedExamples([torch.ones(2, 4), torch.ones(2, 3, dtype=torch.long)])
    with pytest.raises(ValueError, match="one entry per input step"):
        pad_collate(stacked, per_step_targets=True)


@pytest.mark.parametrize("task", ["adding", "copy", "digits"])
def test_a_task_loaders_batches_are_those_of_a_plain_tensor_dataset(task: str) -> None:
    """The loaders rnnlab trains with, against the same loaders over a plain TensorDataset."""
    cfg = load_run_config("train", [f"task={task}", "train.batch_size=16"])
    datamodule = build_datamodule(cfg)
    datamodule.setup("fit")
    for make in (datamodule.train_dataloader, datamodule.val_dataloader):
        loader = make()
        assert isinstance(loader.dataset, StackedTensorDataset)
        plain = DataLoader(
            TensorDataset(*loader.dataset.tensors),
            batch_sampler=loader.batch_sampler,
            collate_fn=PadCollate.from_spec(datamodule.spec),
        )
        batches = list(zip(loader, plain, strict=True))
        assert len(batches) > 1
        for served, built in batches:
            _same(served, built)
