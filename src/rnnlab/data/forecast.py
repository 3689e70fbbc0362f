"""Time-series forecasting: statsmodels' bundled series, or a column of the user's CSV file.

Windows of `task.context` past values predict the next `task.horizon` values (a many-to-one
net with `horizon` outputs). The series is split in time order (train, then val, then test;
a window's context may reach back into the previous split, its targets never cross one) and
standardised with the training part's mean and std, so MSE and MAE are in standard units.

MASE (Hyndman & Koehler 2006) divides the MAE by the in-sample MAE of the seasonal-naive
forecast y[t] = y[t - season] on the training part: below 1 beats that naive forecast.
The scale travels in `TaskSpec.mase_scale`; the seasonal-naive forecast's own test MSE, MAE and
MASE are the task's baselines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
import torchmetrics
from pydantic import Field, model_validator
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.config import ConfigError, TaskConfigBase
from rnnlab.data.base import SequenceDataModule, TaskSpec
from rnnlab.data.collate import PadCollate
from rnnlab.data.fetch import STATSMODELS_SERIES
from rnnlab.data.sampler import BucketBatchSampler
from rnnlab.data.user_files import csv_rows, read_text, require_file
from rnnlab.data.variable_length import SPLITS
from rnnlab.registry import register_task

# series → (context, horizon, season) when the config leaves them null.
SERIES_DEFAULTS = {
    "sunspots": (33, 11, 11),  # yearly; the solar cycle is about 11 years
    "co2": (104, 52, 52),  # weekly; the seasonal cycle is one year
}


class ForecastBaseConfig(TaskConfigBase):
    context: int | None = Field(default=None, ge=1)  # past steps the net reads
    horizon: int | None = Field(default=None, ge=1)  # future steps it predicts at once
    season: int | None = Field(default=None, ge=1)  # period of the seasonal-naive baseline
    stride: int = Field(default=1, ge=1)  # steps between consecutive window origins
    val_fraction: float = Field(default=0.15, ge=0.01, lt=1.0)
    test_fraction: float = Field(default=0.15, ge=0.01, lt=1.0)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> ForecastBaseConfig:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"task.val_fraction={self.val_fraction} + task.test_fraction="
                f"{self.test_fraction} must be < 0.9 to leave data to train on"
            )
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


class CsvSeriesConfig(ForecastBaseConfig):
    name: str = "csv_series"
    path: str | None = None  # CSV file with a header row
    column: str | None = None  # the column to forecast; null: the file's only column

    def sizes(self) -> tuple[int, int, int]:
        return (self.context or 24, self.horizon or 1, self.season or 1)


@dataclass(frozen=True)
class Boundaries:
    """Split ends in time order: train is [0, train_end), val [train_end, val_end), test after."""

    train_end: int
    val_end: int
    total: int

    @classmethod
    def of(cls, total: int, val_fraction: float, test_fraction: float) -> Boundaries:
        n_test = max(1, round(total * test_fraction))
        n_val = max(1, round(total * val_fraction))
        return cls(total - n_val - n_test, total - n_test, total)

    def origins(self, split: str, context: int, horizon: int, stride: int) -> range:
        """First target index of every window whose targets lie inside `split`."""
        lo, hi = {
            "train": (0, self.train_end),
            "val": (self.train_end, self.val_end),
            "test": (self.val_end, self.total),
        }[split]
        return range(max(lo, context), hi - horizon + 1, stride)


def windows(
    series: torch.Tensor, origins: range, context: int, horizon: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (N, context, 1) and targets (N, horizon) for the given origins."""
    idx = torch.as_tensor(list(origins), dtype=torch.long)
    past = idx[:, None] + torch.arange(-context, 0)[None, :]
    future = idx[:, None] + torch.arange(horizon)[None, :]
    return series[past].unsqueeze(-1), series[future]


def seasonal_naive(series: torch.Tensor, origins: range, horizon: int, season: int) -> torch.Tensor:
    """(N, horizon) forecasts: each step repeats the last observed value of its season."""
    idx = torch.as_tensor(list(origins), dtype=torch.long)
    k = torch.arange(horizon)
    source = idx[:, None] + k[None, :] - season * (k // season + 1)[None, :]
    return series[source.clamp_min(0)]


def mase_scale(train_part: torch.Tensor, season: int) -> float:
    """In-sample MAE of the seasonal-naive forecast on the training part (MASE's denominator)."""
    if len(train_part) <= season:
        return math.nan
    return float((train_part[season:] - train_part[:-season]).abs().mean())


def read_statsmodels_series(series: str) -> torch.Tensor:
    """sunspots: yearly 1700-2008 (309 values); co2: weekly 1958-2001, gaps interpolated."""
    import pandas as pd

    path = STATSMODELS_SERIES[series].path()
    frame = pd.read_csv(path)
    if series == "sunspots":
        values = frame["SUNACTIVITY"].astype(float)
    else:
        frame["date"] = pd.to_datetime(frame["date"].astype(str), format="%Y%m%d")
        weekly = frame.set_index("date")["co2"].astype(float).asfreq("W-SAT")
        values = weekly.interpolate(limit_direction="both")
    return torch.tensor(values.to_numpy(), dtype=torch.float32)


def read_csv_series(cfg: CsvSeriesConfig) -> torch.Tensor:
    """The user's column as floats; ConfigError (one line) for any problem with the file."""
    path = require_file(cfg.path, "path", "a CSV file with a row per time step", "data/series.csv")
    column = cfg.column
    if column is None:
        header = read_text(path, "path").splitlines()[0].split(",")
        if len(header) != 1:
            raise ConfigError(
                f"task.column is required: {str(path)!r} has {len(header)} columns "
                f"({', '.join(h.strip() for h in header)}); e.g. task.column={header[-1].strip()}"
            )
        column = header[0].strip()
    values = []
    previous = 1  # the header
    for line, row in csv_rows(path, "path", [column]):
        if line > previous + 1:  # the csv module skips blank lines: a gap in time
            raise ConfigError(
                f"task.path={str(path)!r}: line {previous + 1} is blank (a missing value?); "
                "fill it in or delete the line"
            )
        previous = line
        text = row[column].strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(
                f"task.path={str(path)!r}: line {line}: {text!r} in column {column!r} "
                "is not a number"
            )
        values.append(value)
    return torch.tensor(values, dtype=torch.float32)


def check_length(total: int, cfg: ForecastBaseConfig, where: str) -> None:
    context, horizon, _ = cfg.sizes()
    bounds = Boundaries.of(total, cfg.val_fraction, cfg.test_fraction)
    for split in SPLITS:
        if len(bounds.origins(split, context, horizon, cfg.stride)) == 0:
            raise ConfigError(
                f"{where}: {total} values leave no {split} window of task.context={context} + "
                f"task.horizon={horizon} steps; use a longer series or smaller windows"
            )


class MeanAbsoluteScaledError(torchmetrics.MeanAbsoluteError):
    """MAE divided by a fixed scale: the seasonal-naive forecast's in-sample MAE."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def compute(self) -> torch.Tensor:
        return super().compute() / self.scale


def mase_metric(spec: TaskSpec) -> torchmetrics.Metric:
    if not spec.mase_scale:
        raise ValueError("metric 'mase' needs TaskSpec.mase_scale (a positive scale)")
    return MeanAbsoluteScaledError(spec.mase_scale)


def register_mase_metric() -> None:
    """Add 'mase' to the metric registry (idempotent).

    Done when a forecast spec is built, not at import: rnnlab.training.objectives imports
    rnnlab.data, so importing it from here at import time would be circular.
    """
    from rnnlab.training.objectives import METRICS

    METRICS.setdefault("mase", mase_metric)


class ForecastDataModule(SequenceDataModule):
    """Predict the next `horizon` values of one series from its last `context` values."""

    Config: ClassVar[type[TaskConfigBase]] = ForecastBaseConfig
    cfg: ForecastBaseConfig

    def __init__(self, cfg: ForecastBaseConfig, batch_size: int, seed: int) -> None:
        super().__init__(cfg, batch_size, seed)
        self._splits: dict[str, TensorDataset] = {}
        self._facts: dict[str, Any] = {}
        self._scale = math.nan
        self._baselines: dict[str, float] = {}

    def read_series(self) -> torch.Tensor:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self._splits:
            return
        context, horizon, season = self.cfg.sizes()
        raw = self.read_series()
        check_length(len(raw), self.cfg, f"task.name={self.cfg.name}")
        bounds = Boundaries.of(len(raw), self.cfg.val_fraction, self.cfg.test_fraction)
        train_part = raw[: bounds.train_end]
        mean, std = float(train_part.mean()), float(train_part.std().clamp_min(1e-8))
        series = (raw - mean) / std
        self._scale = mase_scale(series[: bounds.train_end], season)
        if not self._scale > 0:
            raise ConfigError(
                f"task.season={season}: the training part has no seasonal variation to scale "
                "MASE by (constant, or no longer than one season)"
            )
        for split in SPLITS:
            origins = bounds.origins(split, context, horizon, self.cfg.stride)
            self._splits[split] = TensorDataset(*windows(series, origins, context, horizon))
        test_origins = bounds.origins("test", context, horizon, self.cfg.stride)
        naive = seasonal_naive(series, test_origins, horizon, season)
        error = naive - self._splits["test"].tensors[1]
        mae = float(error.abs().mean())
        self._baselines = {
            "mse": round(float((error**2).mean()), 6),
            "mae": round(mae, 6),
            "mase": round(mae / self._scale, 6),
        }
        self._facts = {
            "series_length": len(raw),
            "context": context,
            "horizon": horizon,
            "season": season,
            "train_mean": round(mean, 6),
            "train_std": round(std, 6),
            "mase_scale": round(self._scale, 6),
        }

    def dataset(self, split: str) -> TensorDataset:
        self.setup()
        return self._splits[split]

    @property
    def spec(self) -> TaskSpec:
        self.setup()
        register_mase_metric()
        return TaskSpec(
            head="many_to_one",
            loss="mse",
            input_kind="real",
            input_size=1,
            output_size=self.cfg.sizes()[1],
            metrics=("mse", "mae", "mase"),
            monitor="val/mase",
            monitor_mode="min",
            # The seasonal-naive forecast on the test windows (standardised units).
            baselines=dict(self._baselines),
            mase_scale=self._scale,
        )

    def _loader(self, dataset: TensorDataset, train: bool) -> DataLoader:
        collate = PadCollate.from_spec(self.spec)
        if train:
            sampler = BucketBatchSampler.fixed_length(len(dataset), self.batch_size, seed=self.seed)
            return DataLoader(dataset, batch_sampler=sampler, num_workers=0, collate_fn=collate)
        return DataLoader(dataset, batch_size=self.batch_size, num_workers=0, collate_fn=collate)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("train"), train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("val"), train=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.dataset("test"), train=False)

    def describe(self) -> dict[str, Any]:
        self.setup()
        sizes = {f"{s}_size": len(self._splits[s]) for s in SPLITS}
        return {**self._facts, **sizes}


@register_task("forecast")
class StatsmodelsForecastDataModule(ForecastDataModule):
    """Forecast sunspots (yearly) or Mauna Loa CO2 (weekly) from statsmodels' datasets."""

    Config: ClassVar[type[TaskConfigBase]] = ForecastConfig
    cfg: ForecastConfig

    @classmethod
    def check(cls, cfg: TaskConfigBase) -> None:
        assert isinstance(cfg, ForecastConfig)
        STATSMODELS_SERIES[cfg.series].path()

    def read_series(self) -> torch.Tensor:
        return read_statsmodels_series(self.cfg.series)


@register_task("csv_series")
class CsvSeriesDataModule(ForecastDataModule):
    """Bring your own series: one numeric column of a CSV file, one row per time step."""

    Config: ClassVar[type[TaskConfigBase]] = CsvSeriesConfig
    cfg: CsvSeriesConfig

    @classmethod
    def check(cls, cfg: TaskConfigBase) -> None:
        assert isinstance(cfg, CsvSeriesConfig)
        series = read_csv_series(cfg)
        check_length(len(series), cfg, f"task.path={cfg.path!r}")

    def read_series(self) -> torch.Tensor:
        return read_csv_series(self.cfg)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": str(Path(self.cfg.path or ""))}
