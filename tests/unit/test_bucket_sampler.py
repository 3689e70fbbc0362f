"""BucketBatchSampler: each index once per epoch, less padding, reproducible per (seed, epoch)."""

from __future__ import annotations

import torch
from lightning_fabric.utilities.data import _replace_dunder_methods, _set_sampler_epoch
from pytorch_lightning.trainer.states import RunningStage
from pytorch_lightning.utilities.data import _update_dataloader
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler, TensorDataset

from rnnlab.data import BucketBatchSampler, padding_fraction


def _skewed_lengths(n: int = 2000) -> torch.Tensor:
    gen = torch.Generator().manual_seed(0)
    # Log-normal lengths, as in real text: many short sequences, a long tail.
    return (torch.randn(n, generator=gen) * 0.8 + 3.5).exp().long().clamp(min=1)


def _flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


def test_every_index_appears_exactly_once_per_epoch() -> None:
    lengths = _skewed_lengths(1003)
    sampler = BucketBatchSampler(lengths, batch_size=32, seed=1)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(_flat(batches)) == list(range(1003))
        assert len(batches) == len(sampler) == 32  # ceil(1003 / 32)
        assert sorted(len(b) for b in batches) == [11] + [32] * 31


def test_drop_last_drops_only_the_incomplete_batch() -> None:
    sampler = BucketBatchSampler(_skewed_lengths(1003), batch_size=32, drop_last=True, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 31
    assert all(len(b) == 32 for b in batches)
    assert len(set(_flat(batches))) == 31 * 32


def test_bucketed_batches_pad_less_than_random_batches_on_skewed_lengths() -> None:
    lengths = _skewed_lengths()
    bucketed = BucketBatchSampler(lengths, batch_size=32, seed=0)
    order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0))
    random_batches = order.split(32)
    bucket_pad = sum(padding_fraction(lengths[b]) for b in bucketed) / len(bucketed)
    random_pad = sum(padding_fraction(lengths[b]) for b in random_batches) / len(random_batches)
    assert bucket_pad < 0.5 * random_pad


def test_same_seed_and_epoch_repeat_and_epochs_differ() -> None:
    lengths = _skewed_lengths(500)
    a = BucketBatchSampler(lengths, batch_size=16, seed=5)
    b = BucketBatchSampler(lengths, batch_size=16, seed=5)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(BucketBatchSampler(lengths, batch_size=16, seed=6)) != first


def test_fixed_length_path_is_a_seeded_shuffle_of_all_indices() -> None:
    sampler = BucketBatchSampler.fixed_length(100, batch_size=10, seed=3)
    batches = list(sampler)
    assert sorted(_flat(batches)) == list(range(100))
    assert _flat(batches) != list(range(100))
    ordered = BucketBatchSampler.fixed_length(100, batch_size=10, shuffle=False)
    assert _flat(list(ordered)) == list(range(100))


def test_lightning_set_epoch_hook_reaches_the_bucket_sampler() -> None:
    # Lightning calls set_epoch on batch_sampler.sampler, not on the batch sampler itself.
    lengths = _skewed_lengths(200)
    dataset = TensorDataset(torch.arange(200))
    loader = DataLoader(dataset, batch_sampler=BucketBatchSampler(lengths, 8, seed=2))
    reference = BucketBatchSampler(lengths, 8, seed=2)
    reference.set_epoch(4)
    _set_sampler_epoch(loader, 4)
    assert list(loader.batch_sampler) == list(reference)


def test_lightning_injects_a_distributed_sampler_and_ranks_split_the_indices() -> None:
    # Under DDP Lightning re-creates a BatchSampler subclass with sampler=DistributedSampler;
    # these are the calls its data connector makes (pytorch_lightning 2.6).
    lengths = _skewed_lengths(300)
    dataset = TensorDataset(torch.arange(300))
    with _replace_dunder_methods(DataLoader, "dataset"), _replace_dunder_methods(BatchSampler):
        loader = DataLoader(dataset, batch_sampler=BucketBatchSampler(lengths, 8, seed=2))
    per_rank = []
    for rank in (0, 1):
        dist = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=0)
        rank_loader = _update_dataloader(loader, dist, mode=RunningStage.TRAINING)
        assert isinstance(rank_loader.batch_sampler, BucketBatchSampler)
        assert rank_loader.batch_sampler.sampler is dist
        _set_sampler_epoch(rank_loader, 1)
        assert rank_loader.batch_sampler.epoch == 1
        per_rank.append(list(rank_loader.batch_sampler))
    assert len(per_rank[0]) == len(per_rank[1])  # unequal counts would hang DDP
    assert sorted(_flat(per_rank[0]) + _flat(per_rank[1])) == list(range(300))
