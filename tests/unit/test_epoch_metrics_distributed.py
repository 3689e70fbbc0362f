"""A stage's epoch loss is the mean over every rank's targets in a data-parallel run.

Two real gloo ranks on 127.0.0.1, each with batches of its own size: the loss each rank
reports must be the global mean weighted by valid targets, not its own rank's mean, and it
must be the same on both ranks (rank 0 logs it; early stopping reads it on every rank).
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tests.unit._specs import SERIES

from rnnlab.training.objectives import EpochMetrics, loss_fn, valid_pairs

# Per rank: (batch size, true length) of each batch; the ranks differ in both.
BATCHES = {0: ((2, 6), (1, 3)), 1: ((3, 6), (3, 2), (1, 6))}


def _batch(rank: int, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    size, length = BATCHES[rank][index]
    g = torch.Generator().manual_seed(100 * rank + index)
    preds = torch.randn(size, 6, 2, generator=g)
    targets = torch.randn(size, 6, 2, generator=g)
    return preds, targets, torch.full((size,), length)


def _rank(rank: int, port: int, host_sums: bool, results: dict[int, dict[str, float]]) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        metrics = EpochMetrics(SERIES)
        for index in range(len(BATCHES[rank])):
            p, t = valid_pairs(SERIES, *_batch(rank, index))
            loss = loss_fn(SERIES, p, t)
            metrics.update(loss, p, t, loss_value=float(loss) if host_sums else None)
        results[rank] = metrics.compute("val")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("host_sums", [False, True], ids=["tensor_loss", "loss_value"])
def test_the_epoch_loss_is_the_mean_over_both_ranks(host_sums: bool) -> None:
    squared, steps = 0.0, 0
    for rank, batches in BATCHES.items():
        for index in range(len(batches)):
            preds, targets, lengths = _batch(rank, index)
            squared += float(((preds - targets) ** 2)[:, : int(lengths[0])].sum())
            steps += int(lengths.sum()) * 2  # two outputs per step
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_rank, args=(_free_port(), host_sums, results), nprocs=2, join=True)
        per_rank = dict(results)
    for rank in (0, 1):
        assert per_rank[rank]["val/loss"] == pytest.approx(squared / steps, rel=1e-6)
        assert per_rank[rank]["val/mse"] == per_rank[rank]["val/loss"]
    # MAE is a torchmetrics state: synced the same way, so the ranks agree on it too.
    assert per_rank[0]["val/mae"] == pytest.approx(per_rank[1]["val/mae"], rel=1e-9)


def test_the_epoch_metrics_hold_no_buffers_for_ddp_to_broadcast() -> None:
    """DDP broadcasts a module's buffers from rank 0 before every forward when it has any;
    the metric modules must not add one to a model that has none."""
    metrics = EpochMetrics(SERIES)
    assert list(metrics.buffers()) == []
