"""Tasks, batching and padding: `from rnnlab.data import X` for any name in `__all__`.

Names are imported on first use (PEP 562), not with the package: most of them import torch
and Lightning (seconds), and the task schemas in `rnnlab.data.task_configs`, which the CLI
needs to validate a config, must be importable without them.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> the submodule that defines it
_SOURCES = {
    "IGNORE_INDEX": "base",
    "SequenceBatch": "base",
    "SequenceDataModule": "base",
    "TaskSpec": "base",
    "PadCollate": "collate",
    "pad_collate": "collate",
    "padding_fraction": "collate",
    "DigitsDataModule": "digits",
    "CsvSeriesDataModule": "forecast",
    "StatsmodelsForecastDataModule": "forecast",
    "PtbCharDataModule": "language_model",
    "PtbWordDataModule": "language_model",
    "PixelMnistDataModule": "pixel_mnist",
    "AllIndices": "sampler",
    "BucketBatchSampler": "sampler",
    "derive_seed": "sampler",
    "JapaneseVowelsDataModule": "speech",
    "SpokenDigitsDataModule": "speech",
    "AddingDataModule": "synthetic",
    "CopyDataModule": "synthetic",
    "adding_problem": "synthetic",
    "copy_task": "synthetic",
    "ConllTaggingDataModule": "tagging",
    "PosDataModule": "tagging",
    "AddingConfig": "task_configs",
    "ConllTaggingConfig": "task_configs",
    "CopyConfig": "task_configs",
    "CsvSeriesConfig": "task_configs",
    "DigitsConfig": "task_configs",
    "ForecastConfig": "task_configs",
    "JapaneseVowelsConfig": "task_configs",
    "PixelMnistConfig": "task_configs",
    "PosConfig": "task_configs",
    "PtbCharConfig": "task_configs",
    "PtbWordConfig": "task_configs",
    "SentimentConfig": "task_configs",
    "SpokenDigitsConfig": "task_configs",
    "TextClassificationConfig": "task_configs",
    "SentimentDataModule": "text_classification",
    "UserTextClassificationDataModule": "text_classification",
    "Vocabulary": "vocab",
}

__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'rnnlab.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"rnnlab.data.{source}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
