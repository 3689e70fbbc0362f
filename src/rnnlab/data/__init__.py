"""Tasks, batching and padding. Importing this package registers the built-in tasks."""

from rnnlab.data.base import IGNORE_INDEX, SequenceBatch, SequenceDataModule, TaskSpec
from rnnlab.data.collate import PadCollate, pad_collate, padding_fraction
from rnnlab.data.digits import DigitsConfig, DigitsDataModule
from rnnlab.data.forecast import (
    CsvSeriesConfig,
    CsvSeriesDataModule,
    ForecastConfig,
    StatsmodelsForecastDataModule,
)
from rnnlab.data.language_model import (
    PtbCharConfig,
    PtbCharDataModule,
    PtbWordConfig,
    PtbWordDataModule,
)
from rnnlab.data.pixel_mnist import PixelMnistConfig, PixelMnistDataModule
from rnnlab.data.sampler import AllIndices, BucketBatchSampler, derive_seed
from rnnlab.data.speech import (
    JapaneseVowelsConfig,
    JapaneseVowelsDataModule,
    SpokenDigitsConfig,
    SpokenDigitsDataModule,
)
from rnnlab.data.synthetic import (
    AddingConfig,
    AddingDataModule,
    CopyConfig,
    CopyDataModule,
    adding_problem,
    copy_task,
)
from rnnlab.data.tagging import (
    ConllTaggingConfig,
    ConllTaggingDataModule,
    PosConfig,
    PosDataModule,
)
from rnnlab.data.text_classification import (
    SentimentConfig,
    SentimentDataModule,
    TextClassificationConfig,
    UserTextClassificationDataModule,
)
from rnnlab.data.vocab import Vocabulary

__all__ = [
    "IGNORE_INDEX",
    "AddingConfig",
    "AddingDataModule",
    "AllIndices",
    "BucketBatchSampler",
    "ConllTaggingConfig",
    "ConllTaggingDataModule",
    "CopyConfig",
    "CopyDataModule",
    "CsvSeriesConfig",
    "CsvSeriesDataModule",
    "DigitsConfig",
    "DigitsDataModule",
    "ForecastConfig",
    "JapaneseVowelsConfig",
    "JapaneseVowelsDataModule",
    "PadCollate",
    "PixelMnistConfig",
    "PixelMnistDataModule",
    "PosConfig",
    "PosDataModule",
    "PtbCharConfig",
    "PtbCharDataModule",
    "PtbWordConfig",
    "PtbWordDataModule",
    "SentimentConfig",
    "SentimentDataModule",
    "SequenceBatch",
    "SequenceDataModule",
    "SpokenDigitsConfig",
    "SpokenDigitsDataModule",
    "StatsmodelsForecastDataModule",
    "TaskSpec",
    "TextClassificationConfig",
    "UserTextClassificationDataModule",
    "Vocabulary",
    "adding_problem",
    "copy_task",
    "derive_seed",
    "pad_collate",
    "padding_fraction",
]
