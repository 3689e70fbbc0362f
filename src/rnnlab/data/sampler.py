"""Group examples of similar length into batches, in an order fixed by (seed, epoch).

Sorting a whole epoch by length would make every batch's content identical across epochs
and feed the model lengths in a monotone order; shuffling fully wastes compute on padding.
The usual compromise (as in fairseq's and AllenNLP's bucket iterators): shuffle, cut into
chunks of ~50 batches, sort each chunk by length, cut it into batches, shuffle batch order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import BatchSampler, Sampler


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts (task name, run seed, split, length), stable across runs.

    Python's `hash()` is salted per process, and `seed + 1`-style offsets make the splits of
    seed s and s + 1 overlap; a digest of the parts has neither problem.
    """
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class AllIndices(Sampler[int]):
    """Indices 0..n-1 that remember the epoch Lightning hands them.

    Lightning calls `set_epoch` on `dataloader.batch_sampler.sampler`, not on the batch sampler
    itself (lightning_fabric.utilities.data._set_sampler_epoch); this is how the epoch reaches
    `BucketBatchSampler`. Under DDP Lightning replaces it with a `DistributedSampler`, which has
    the same `epoch` attribute.
    """

    def __init__(self, num_samples: int) -> None:
        self.num_samples = num_samples
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.num_samples))

    def __len__(self) -> int:
        return self.num_samples


class BucketBatchSampler(BatchSampler):
    """Batches of indices of similar length; every index exactly once per epoch.

    Deterministic for (seed, epoch): resuming at epoch k replays epoch k's batches. With
    `shuffle=False` (evaluation) indices are sorted by length and batched in that order.
    When all lengths are equal (fixed-length tasks) it is a plain seeded shuffle.

    It subclasses `BatchSampler` and takes `sampler` as an argument so that Lightning can
    inject a `DistributedSampler` under DDP: each rank then buckets only the indices its
    sampler yields, and every rank gets the same number of batches.
    """

    def __init__(
        self,
        lengths: Sequence[int] | torch.Tensor,
        batch_size: int,
        drop_last: bool = False,
        *,
        shuffle: bool = True,
        seed: int = 0,
        bucket_batches: int = 50,
        sampler: Sampler[int] | None = None,
    ) -> None:
        self.lengths = torch.as_tensor(lengths, dtype=torch.long).flatten()
        if sampler is None:
            sampler = AllIndices(len(self.lengths))
        super().__init__(sampler, batch_size, drop_last)
        if bucket_batches < 1:
            raise ValueError(f"bucket_batches={bucket_batches}: must be >= 1")
        self.shuffle = shuffle
        self.seed = seed
        self.bucket_batches = bucket_batches
        self._epoch = 0
        self._fixed_length = self.lengths.numel() == 0 or bool(
            (self.lengths == self.lengths[0]).all()
        )

    @classmethod
    def fixed_length(
        cls, num_samples: int, batch_size: int, drop_last: bool = False, **kwargs: object
    ) -> BucketBatchSampler:
        """The plain path for tasks whose sequences all have one length."""
        return cls(torch.zeros(num_samples, dtype=torch.long), batch_size, drop_last, **kwargs)

    @property
    def epoch(self) -> int:
        return int(getattr(self.sampler, "epoch", self._epoch))

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        set_inner = getattr(self.sampler, "set_epoch", None)
        if callable(set_inner):
            set_inner(epoch)

    def __len__(self) -> int:
        n = len(self.sampler)  # type: ignore[arg-type]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def batches(self) -> list[list[int]]:
        """This epoch's batches, as lists of dataset indices."""
        indices = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long)
        gen = torch.Generator().manual_seed(derive_seed("bucket", self.seed, self.epoch))
        if self.shuffle:
            indices = indices[torch.randperm(len(indices), generator=gen)]
            chunk = self.batch_size * self.bucket_batches
        else:
            chunk = max(len(indices), 1)
        if not self._fixed_length:
            parts = []
            for start in range(0, len(indices), chunk):
                part = indices[start : start + chunk]
                # A stable sort keeps the shuffled order among equal lengths.
                order = torch.sort(self.lengths[part], stable=True).indices
                parts.append(part[order])
            indices = torch.cat(parts) if parts else indices
        batches = list(torch.split(indices, self.batch_size))
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if self.shuffle:
            # Without this, the epoch would run short-to-long within each chunk.
            batches = [batches[i] for i in torch.randperm(len(batches), generator=gen)]
        return [b.tolist() for b in batches]
