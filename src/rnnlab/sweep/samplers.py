"""Optuna samplers by the names `sweep.sampler` accepts, one small factory each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rnnlab.sweep.space import SearchSpace


def _tpe(space: SearchSpace, seed: int) -> Any:
    import optuna

    # multivariate + group: TPE models conditional parameters (the clip threshold exists
    # only when clipping is on) jointly instead of independently.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=5)


def _random(space: SearchSpace, seed: int) -> Any:
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


def _cmaes(space: SearchSpace, seed: int) -> Any:
    import optuna

    # Categorical parameters fall back to independent random sampling (Optuna's behaviour).
    return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)


def _grid(space: SearchSpace, seed: int) -> Any:
    import optuna

    return optuna.samplers.GridSampler(space.grid(), seed=seed)


def _nsga2(space: SearchSpace, seed: int) -> Any:
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed)


SAMPLERS: dict[str, Callable[[SearchSpace, int], Any]] = {
    "tpe": _tpe,
    "random": _random,
    "cmaes": _cmaes,
    "grid": _grid,
    "nsga2": _nsga2,
}


def build_sampler(name: str, space: SearchSpace, seed: int) -> Any:
    return SAMPLERS[name](space, seed)
