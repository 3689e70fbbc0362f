"""Shared plumbing of the tasks whose examples are read from files: storage, splits, loaders.

Examples of varying length are batched through the shared `PadCollate` (true lengths kept)
and, unless `task.bucketing=false`, a `BucketBatchSampler` that groups similar lengths so
little compute is spent on padding; evaluation batches are sorted by length.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from rnnlab.config import TaskConfigBase
from rnnlab.data.base import SequenceDataModule
from rnnlab.data.collate import PadCollate
from rnnlab.data.sampler import BucketBatchSampler, derive_seed
from rnnlab.data.splits import SPLITS, split_sizes

# The schemas live in task_configs, which validation imports without torch; kept importable here.
from rnnlab.data.task_configs import SplitFractionsConfig as SplitFractionsConfig
from rnnlab.data.task_configs import VariableLengthConfig as VariableLengthConfig


class ExampleDataset(Dataset):
    """`(inputs, target)` pairs of varying length, with their lengths at hand for bucketing.

    inputs[i]: (T_i,) token ids or (T_i, F) features; targets: one tensor per example
    (per-step targets) or a stacked (N, ...) tensor (one target per sequence).
    """

    def __init__(self, inputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        self.inputs = list(inputs)
        self.targets = targets
        self.lengths = torch.tensor([len(x) for x in self.inputs], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inputs[i], self.targets[i]

    @property
    def steps(self) -> int:
        return int(self.lengths.sum())

    # --- storage in the processed-data cache: flat tensors plus offsets -------------------
    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"inputs": torch.cat(self.inputs), "lengths": self.lengths}
        if isinstance(self.targets, torch.Tensor):
            payload["targets"] = self.targets
        else:
            payload["targets_flat"] = torch.cat(list(self.targets))
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ExampleDataset:
        lengths = payload["lengths"].tolist()
        inputs = list(torch.split(payload["inputs"], lengths))
        if "targets" in payload:
            return cls(inputs, payload["targets"])
        return cls(inputs, list(torch.split(payload["targets_flat"], lengths)))


def split_indices(
    num: int,
    fractions: tuple[float, float],
    seed_parts: Sequence[object],
    labels: Sequence[int] | torch.Tensor | None = None,
) -> dict[str, list[int]]:
    """Train/val/test indices: (val, test) fractions, stratified by `labels` when given.

    The split is fixed by `seed_parts` (the task's name, not the run seed), so runs with
    different seeds are scored on the same test set. The sizes come from `split_sizes`, as
    do those the pre-run checks of the user's files count on.
    """
    gen = torch.Generator().manual_seed(derive_seed("split", *seed_parts))
    groups: list[torch.Tensor]
    if labels is None:
        groups = [torch.arange(num)]
    else:
        lab = torch.as_tensor(labels)
        groups = [torch.nonzero(lab == c).flatten() for c in torch.unique(lab)]
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for group in groups:
        group = group[torch.randperm(len(group), generator=gen)]
        _, n_val, n_test = split_sizes(len(group), fractions)
        out["val"] += group[:n_val].tolist()
        out["test"] += group[n_val : n_val + n_test].tolist()
        out["train"] += group[n_val + n_test :].tolist()
    return {s: sorted(idx) for s, idx in out.items()}


# Config fields that change how batches are drawn, not what the data is: left out of cache keys.
LOADER_ONLY_FIELDS = frozenset({"bucketing"})


def data_fields(cfg: TaskConfigBase) -> dict[str, Any]:
    """The task config's fields that shape the processed data (the processed-data cache key)."""
    dumped = cfg.model_dump(mode="json", by_alias=True)
    return {k: v for k, v in dumped.items() if k not in LOADER_ONLY_FIELDS}


class ExampleDataModule(SequenceDataModule):
    """A task whose three splits are `ExampleDataset`s, loaded once by `load_splits`."""

    def __init__(self, cfg: TaskConfigBase, batch_size: int, seed: int) -> None:
        super().__init__(cfg, batch_size, seed)
        self._splits: dict[str, ExampleDataset] = {}

    def load_splits(self) -> dict[str, ExampleDataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not self._splits:
            self._splits = self.load_splits()

    def dataset(self, split: str) -> ExampleDataset:
        """One split ("train", "val", "test"), loaded on first use."""
        self.setup()
        return self._splits[split]

    @property
    def bucketing(self) -> bool:
        return bool(getattr(self.cfg, "bucketing", False))

    def _loader(self, dataset: ExampleDataset, train: bool) -> DataLoader:
        if self.bucketing:
            sampler = BucketBatchSampler(
                dataset.lengths, self.batch_size, shuffle=train, seed=self.seed
            )
        elif train:
            sampler = BucketBatchSampler.fixed_length(len(dataset), self.batch_size, seed=self.seed)
        else:
            return DataLoader(
                dataset,
                batch_size=self.batch_size,
                shuffle=False,
                num_workers=0,
                collate_fn=PadCollate.from_spec(self.spec),
            )
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=0,
            collate_fn=PadCollate.from_spec(self.spec),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), train=False)

    def describe(self) -> dict[str, Any]:
        facts: dict[str, Any] = {}
        for split in SPLITS:
            ds = self.dataset(split)
            facts[f"{split}_size"] = len(ds)
        lengths = self.dataset("train").lengths.float()
        facts["train_mean_length"] = round(float(lengths.mean()), 2)
        facts["train_max_length"] = int(lengths.max())
        return facts


def standardize(
    splits: dict[str, list[torch.Tensor]],
) -> tuple[dict[str, list[torch.Tensor]], torch.Tensor, torch.Tensor]:
    """Scale each feature to zero mean, unit variance using the training split's steps only."""
    frames = torch.cat(splits["train"])
    mean = frames.mean(0)
    std = frames.std(0).clamp_min(1e-6)
    scaled = {s: [((x - mean) / std).float() for x in xs] for s, xs in splits.items()}
    return scaled, mean, std
