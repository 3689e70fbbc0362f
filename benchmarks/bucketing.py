"""Training throughput with length bucketing against two ways of padding, on real tweets.

The sentiment task's tweets have skewed lengths (median 23 tokens, 99th percentile 41,
longest 246), the case bucketing is for. One model (embedding + 1-layer LSTM, hidden 128,
many-to-one head), one optimizer, the same number of batches, in one process, the ways
interleaved so that machine noise hits all of them alike:

  pad_to_dataset_max  shuffled batches, every batch padded to the longest text in the dataset
  pad_to_batch_max    shuffled batches, each padded to its own longest text (the collate's way)
  bucketed            BucketBatchSampler batches (similar lengths together), padded per batch
  bucketed_packed     the same batches run through pack_padded_sequence (model.pack_sequences)

Throughput is real (unpadded) tokens per second of training steps (forward, backward, Adam),
so every way is credited only with the work that matters; the padding column is the share
of a whole epoch's padded steps that are padding. The target is >= 2x over
pad_to_dataset_max.

    python benchmarks/bucketing.py               # ~3 CPU-minutes on 2 cores
    python benchmarks/bucketing.py --batches 5 --repeats 1   # smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator

import torch

from rnnlab.config import ModelConfig
from rnnlab.data import SequenceBatch
from rnnlab.data.sampler import BucketBatchSampler
from rnnlab.data.text_classification import SentimentConfig, SentimentDataModule
from rnnlab.models import build_model
from rnnlab.training.objectives import loss_fn, valid_pairs

WAYS = ("pad_to_dataset_max", "pad_to_batch_max", "bucketed", "bucketed_packed")


def batches(dm: SentimentDataModule, way: str, count: int, seed: int) -> Iterator[SequenceBatch]:
    dataset = dm.dataset("train")
    collate = dm.train_dataloader().collate_fn
    if way.startswith("bucketed"):
        sampler = BucketBatchSampler(dataset.lengths, dm.batch_size, shuffle=True, seed=seed)
    else:
        sampler = BucketBatchSampler.fixed_length(len(dataset), dm.batch_size, seed=seed)
    longest = int(dataset.lengths.max())
    for index_batch in sampler.batches()[:count]:
        batch = collate([dataset[i] for i in index_batch])
        if way == "pad_to_dataset_max":
            extra = longest - batch.inputs.shape[1]
            inputs = torch.nn.functional.pad(batch.inputs, (0, extra), value=0)
            batch = SequenceBatch(inputs, batch.targets, batch.lengths)
        yield batch


def epoch_padding(dm: SentimentDataModule, way: str, seed: int) -> float:
    """Padding share of a whole training epoch's batches done `way` (lengths only, no model)."""
    lengths = dm.dataset("train").lengths
    if way.startswith("bucketed"):
        sampler = BucketBatchSampler(lengths, dm.batch_size, shuffle=True, seed=seed)
    else:
        sampler = BucketBatchSampler.fixed_length(len(lengths), dm.batch_size, seed=seed)
    longest = int(lengths.max())
    real = padded = 0
    for index_batch in sampler.batches():
        batch_lengths = lengths[index_batch]
        steps = longest if way == "pad_to_dataset_max" else int(batch_lengths.max())
        real += int(batch_lengths.sum())
        padded += len(index_batch) * steps
    return 1.0 - real / padded


def tokens_per_second(
    dm: SentimentDataModule, way: str, count: int, seed: int, hidden: int
) -> float:
    """Real tokens per second of `count` training steps done `way`."""
    torch.manual_seed(0)
    model = ModelConfig(
        name="lstm", cell="lstm", hidden_size=hidden, pack_sequences=way == "bucketed_packed"
    )
    spec = dm.spec
    net = build_model(model, spec)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    prepared = list(batches(dm, way, count, seed))  # collation is not what we time
    real = sum(int(b.lengths.sum()) for b in prepared)

    def step(batch: SequenceBatch) -> None:
        preds = net(batch.inputs, batch.lengths).predictions
        loss = loss_fn(spec, *valid_pairs(spec, preds, batch.targets, batch.lengths))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step(prepared[0])  # warm-up: first-call allocations are not throughput
    start = time.perf_counter()
    for batch in prepared:
        step(batch)
    return real / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=20, help="training steps per way")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)

    dm = SentimentDataModule(SentimentConfig(), batch_size=args.batch_size, seed=0)
    lengths = dm.dataset("train").lengths.float()
    print(
        f"sentiment train texts: {len(lengths)}, tokens: median {lengths.median():.0f}, "
        f"mean {lengths.mean():.1f}, max {lengths.max():.0f}; LSTM hidden {args.hidden}, "
        f"batch {args.batch_size}, {args.batches} steps per way, {args.repeats} rounds, "
        f"{torch.get_num_threads()} threads"
    )
    speed: dict[str, list[float]] = {way: [] for way in WAYS}
    for round_ in range(args.repeats):
        order = WAYS[round_ % len(WAYS) :] + WAYS[: round_ % len(WAYS)]
        for way in order:
            speed[way].append(tokens_per_second(dm, way, args.batches, round_, args.hidden))

    base = statistics.median(speed["pad_to_dataset_max"])
    print(f"{'way':<20} {'tokens/s':>10} {'epoch padding':>14} {'vs pad-to-max':>14}")
    for way in WAYS:
        rate = statistics.median(speed[way])
        padding = epoch_padding(dm, way, seed=0)
        print(f"{way:<20} {rate:>10.0f} {padding:>14.1%} {rate / base:>13.2f}x")


if __name__ == "__main__":
    main()
