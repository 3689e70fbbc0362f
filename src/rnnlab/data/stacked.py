"""Fixed-length examples held as stacked tensors, served a batch per indexing call.

A DataLoader over a `TensorDataset` fetches each example on its own (one indexing call per
tensor per example) and the collate stacks them again. On the parity benchmark's batches
of 30 sequences that cost about 140 µs a batch, against about 20 µs for indexing the
stacked tensors once (docs/benchmarks.md). PyTorch's DataLoader asks a map-style dataset
for a whole batch through `__getitems__` when the dataset has one; `StackedTensorDataset`
answers with the batch's rows, already stacked.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import torch
from torch.utils.data import TensorDataset


class StackedExamples(Sequence[tuple[torch.Tensor, ...]]):
    """A batch of examples as stacked tensors (one per field, batch first).

    Still a sequence of per-example tuples, so that any collate function that walks its
    examples (PyTorch's `default_collate`, a user's) gets what a plain dataset would give it;
    `pad_collate` takes the stacked tensors as they are.
    """

    def __init__(self, tensors: Sequence[torch.Tensor]) -> None:
        self.tensors = tuple(tensors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])

    @overload
    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[tuple[torch.Tensor, ...]]: ...

    def __getitem__(
        self, index: int | slice
    ) -> tuple[torch.Tensor, ...] | Sequence[tuple[torch.Tensor, ...]]:
        if isinstance(index, slice):
            return StackedExamples([t[index] for t in self.tensors])
        if not -len(self) <= index < len(self):
            raise IndexError(f"example {index} of a batch of {len(self)}")
        return tuple(t[index] for t in self.tensors)


class StackedTensorDataset(TensorDataset):
    """`TensorDataset` that gives a DataLoader each batch in one indexing call per tensor."""

    def __getitems__(self, indices: Sequence[int]) -> StackedExamples:
        index = torch.as_tensor(indices, dtype=torch.long)
        return StackedExamples([t[index] for t in self.tensors])
