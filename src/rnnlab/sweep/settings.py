"""The `sweep:` section's schema: how a search runs (not what it searches; see space.py)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


class SweepSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    trials: int = Field(default=14, ge=1, le=100000)
    max_concurrent: int = Field(default=2, ge=1, le=10000)
    sampler: Literal["tpe", "random", "cmaes", "grid", "nsga2"] = "tpe"
    scheduler: Literal["asha", "median", "none"] = "asha"
    grace_period: int = Field(default=1, ge=1)
    reduction_factor: float = Field(default=3.0, gt=1.0)
    metric: str | None = None
    mode: Literal["min", "max"] | None = None
    max_failures: int = Field(default=2, ge=0)
    seed: int = Field(default=0, ge=0)
    resume: bool = False
    final_seeds: int = Field(default=3, ge=0, le=100)
    test_trials: bool = False
    time_budget: float | None = Field(default=None, gt=0.0)
    root: str = "rnnlab-sweeps"
    initial_points: list[dict[str, Any]] = Field(default_factory=list)
    keep_checkpoints: int = Field(default=1, ge=1)
    progress: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not _NAME_RE.match(v):
            raise ValueError("use letters, digits and _ . + - (at most 128 characters, no slashes)")
        return v
