"""Tasks, batching and padding. Importing this package registers the built-in tasks."""

from rnnlab.data.base import IGNORE_INDEX, SequenceBatch, SequenceDataModule, TaskSpec
from rnnlab.data.collate import PadCollate, pad_collate, padding_fraction
from rnnlab.data.digits import DigitsConfig, DigitsDataModule
from rnnlab.data.sampler import AllIndices, BucketBatchSampler, derive_seed
from rnnlab.data.synthetic import (
    AddingConfig,
    AddingDataModule,
    CopyConfig,
    CopyDataModule,
    adding_problem,
    copy_task,
)

__all__ = [
    "IGNORE_INDEX",
    "AddingConfig",
    "AddingDataModule",
    "AllIndices",
    "BucketBatchSampler",
    "CopyConfig",
    "CopyDataModule",
    "DigitsConfig",
    "DigitsDataModule",
    "PadCollate",
    "SequenceBatch",
    "SequenceDataModule",
    "TaskSpec",
    "adding_problem",
    "copy_task",
    "derive_seed",
    "pad_collate",
    "padding_fraction",
]
