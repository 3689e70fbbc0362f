"""scikit-learn's 8x8 digits read as a sequence: a small, offline stand-in for sequential MNIST.

Le et al. 2015 classify MNIST one pixel at a time (and with a fixed permutation of the pixels,
which spreads the dependencies over the whole sequence); the bundled 1,797 8x8 digits give
the same kind of task in seconds on a CPU and need no download.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.config import TaskConfigBase
from rnnlab.data.base import SequenceDataModule, TaskSpec
from rnnlab.data.collate import PadCollate
from rnnlab.data.image_sequences import images_as_sequences
from rnnlab.data.sampler import BucketBatchSampler, derive_seed
from rnnlab.data.stacked import StackedTensorDataset
from rnnlab.data.task_configs import DigitsConfig, check_image_eval_lengths

IMAGE_SIDE = 8
NUM_CLASSES = 10


def pixel_permutation(seed: int) -> torch.Tensor:
    """The fixed order in which `permute=true` reads the 64 pixels for this seed."""
    gen = torch.Generator().manual_seed(derive_seed("digits-permutation", seed))
    return torch.randperm(IMAGE_SIDE * IMAGE_SIDE, generator=gen)


class DigitsDataModule(SequenceDataModule):
    """Classify an 8x8 digit from its rows or pixels read in sequence."""

    Config: ClassVar[type[TaskConfigBase]] = DigitsConfig
    cfg: DigitsConfig

    def __init__(self, cfg: DigitsConfig, batch_size: int, seed: int) -> None:
        super().__init__(cfg, batch_size, seed)
        self._splits: dict[str, TensorDataset] = {}

    @property
    def steps(self) -> int:
        return IMAGE_SIDE if self.cfg.order == "rows" else IMAGE_SIDE * IMAGE_SIDE

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(
            head="many_to_one",
            loss="cross_entropy",
            input_kind="real",
            input_size=IMAGE_SIDE if self.cfg.order == "rows" else 1,
            output_size=NUM_CLASSES,
            metrics=DigitsConfig.scoring.metrics,
            monitor=DigitsConfig.scoring.monitor,
            monitor_mode=DigitsConfig.scoring.monitor_mode,
            # The classes are balanced (174-183 images each): chance is about 1 in 10.
            baselines={"accuracy": 0.1, "cross_entropy": round(math.log(NUM_CLASSES), 4)},
        )

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        # Imported here: scikit-learn costs about a second to import, and describing or
        # checking the task does not need it.
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        images, labels = load_digits(return_X_y=True)
        pixels = torch.as_tensor(images, dtype=torch.float32) / 16.0  # 4-bit grey levels
        if self.cfg.permute:
            pixels = pixels[:, pixel_permutation(self.seed)]
        inputs = pixels.reshape(len(pixels), self.steps, -1)
        targets = torch.as_tensor(labels, dtype=torch.long)

        # Stratified so that each split keeps the 10 classes in proportion.
        index = torch.arange(len(targets)).numpy()
        split_seed = derive_seed("digits-split", self.seed) % (2**32)
        rest, test = train_test_split(
            index,
            test_size=self.cfg.test_fraction,
            stratify=labels,
            random_state=split_seed,
        )
        train, val = train_test_split(
            rest,
            test_size=self.cfg.val_fraction / (1.0 - self.cfg.test_fraction),
            stratify=labels[rest],
            random_state=split_seed,
        )
        for name, idx in (("train", train), ("val", val), ("test", test)):
            idx_t = torch.as_tensor(idx, dtype=torch.long)
            self._splits[name] = StackedTensorDataset(inputs[idx_t], targets[idx_t])

    def dataset(self, name: str) -> TensorDataset:
        """One split ("train", "val", "test"), loaded on first use."""
        self.setup()
        return self._splits[name]

    def _loader(self, dataset: TensorDataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=0,
            collate_fn=PadCollate.from_spec(self.spec),
        )

    def train_dataloader(self) -> DataLoader:
        dataset = self.dataset("train")
        sampler = BucketBatchSampler.fixed_length(len(dataset), self.batch_size, seed=self.seed)
        return DataLoader(
            dataset,
            batch_sampler=sampler,
            num_workers=0,
            collate_fn=PadCollate.from_spec(self.spec),
        )

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"))

    @property
    def native_length(self) -> int:
        """The length the model trains at, in the unit of `task.eval_lengths` (steps)."""
        return self.steps

    def eval_dataloader(self, steps: int) -> DataLoader:
        """The test images resized to be read in `steps` steps (length generalisation)."""
        check_image_eval_lengths([steps], self.cfg.order, self.cfg.permute)
        inputs, targets = self.dataset("test").tensors
        images = inputs.reshape(len(inputs), IMAGE_SIDE, IMAGE_SIDE)
        return self._loader(
            StackedTensorDataset(images_as_sequences(images, self.cfg.order, steps), targets)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "train_size": len(self.dataset("train")),
            "val_size": len(self.dataset("val")),
            "test_size": len(self.dataset("test")),
            "steps_per_sequence": self.steps,
        }
