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
from pathlib import Path
from typing import Any, ClassVar

import torch
import torchmetrics
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.config import ConfigError, TaskConfigBase
from rnnlab.data import user_files
from rnnlab.data.base import SequenceDataModule, TaskSpec
from rnnlab.data.collate import PadCollate
from rnnlab.data.fetch import STATSMODELS_SERIES
from rnnlab.data.sampler import BucketBatchSampler
from rnnlab.data.splits import SPLITS, Boundaries
from rnnlab.data.stacked import StackedTensorDataset
from rnnlab.data.task_configs import SERIES_DEFAULTS as SERIES_DEFAULTS  # still importable here
from rnnlab.data.task_configs import (
    CsvSeriesConfig,
    ForecastBaseConfig,
    ForecastConfig,
    check_length,
)


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
    return torch.tensor(user_files.read_csv_series(cfg), dtype=torch.float32)


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
            self._splits[split] = StackedTensorDataset(*windows(series, origins, context, horizon))
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
            metrics=self.cfg.scoring.metrics,
            monitor=self.cfg.scoring.monitor,
            monitor_mode=self.cfg.scoring.monitor_mode,
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


class StatsmodelsForecastDataModule(ForecastDataModule):
    """Forecast sunspots (yearly) or Mauna Loa CO2 (weekly) from statsmodels' datasets."""

    Config: ClassVar[type[TaskConfigBase]] = ForecastConfig
    cfg: ForecastConfig

    def read_series(self) -> torch.Tensor:
        return read_statsmodels_series(self.cfg.series)


class CsvSeriesDataModule(ForecastDataModule):
    """Bring your own series: one numeric column of a CSV file, one row per time step."""

    Config: ClassVar[type[TaskConfigBase]] = CsvSeriesConfig
    cfg: CsvSeriesConfig

    def read_series(self) -> torch.Tensor:
        return read_csv_series(self.cfg)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "source": str(Path(self.cfg.path or ""))}
