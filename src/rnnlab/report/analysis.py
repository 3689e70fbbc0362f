"""The numbers a sweep report shows: importances, the init x clipping grid, what diverged.

Importances use Optuna's PED-ANOVA, which keeps conditional parameters such as the clip
threshold (present only when clipping is on); fANOVA would drop them (DESIGN.md). Only
trials with a real value enter it: diverged trials carry a ±1e30 penalty for the sampler,
which would make "did not diverge" the only thing that matters. They are counted and
listed separately instead.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass

from rnnlab.report.data import SweepReport, TrialRow

MIN_TRIALS_FOR_IMPORTANCE = 3


@dataclass
class Importances:
    values: dict[str, float]  # parameter -> share of importance (sums to 1), largest first
    trials: int  # trials with a real value used
    note: str = ""  # why there are none, or how rough they are


def importances(report: SweepReport) -> Importances:
    """PED-ANOVA importances over the trials with a real value (Optuna, in memory)."""
    import optuna
    from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances

    rows = [t for t in report.valued() if t.params]
    usable = []
    for row in rows:
        dists = {k: report.distributions[k] for k in row.params if k in report.distributions}
        params = {k: v for k, v in row.params.items() if k in dists}
        if params:
            usable.append((row, params, dists))
    n = len(usable)
    if n < MIN_TRIALS_FOR_IMPORTANCE:
        return Importances(
            {}, n, f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} trials with a value; {n} so far"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if report.minimize else "maximize")
    for row, params, dists in usable:
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=dists, value=row.value)
        )
    # PED-ANOVA compares the top `target_quantile` with the rest and needs >= 2 trials in it.
    quantile = min(0.5, max(0.1, 2.0 / n))
    evaluator = PedAnovaImportanceEvaluator(target_quantile=quantile)
    sign = 1.0 if report.minimize else -1.0  # PED-ANOVA assumes lower is better
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values = get_param_importances(study, evaluator=evaluator, target=lambda t: sign * t.value)
    note = f"PED-ANOVA over {n} trials with a value, top {quantile:.0%} vs all"
    if n < 20:
        note += "; with fewer than ~20 trials treat them as rough"
    return Importances(dict(values), n, note)


# --- recurrent init x clipping ----------------------------------------------------------
def clip_boundary(trials: list[TrialRow]) -> float | None:
    """Low/high split of the clip thresholds: their geometric median."""
    thresholds = [
        t.clip_threshold
        for t in trials
        if t.clip_mode != "none" and t.clip_threshold is not None and t.clip_threshold > 0
    ]
    if not thresholds:
        return None
    return math.exp(statistics.median(math.log(x) for x in thresholds))


def clip_bin(trial: TrialRow, boundary: float | None) -> str:
    """off | low | high threshold, the columns of the init x clipping heatmap."""
    if trial.clip_mode == "none":
        return "off"
    if trial.clip_threshold is None or boundary is None:
        return "on"
    return f"≤ {boundary:.3g}" if trial.clip_threshold <= boundary else f"> {boundary:.3g}"


@dataclass
class Grid:
    """Best metric per (model, recurrent init, clip bin); counts of trials and divergences."""

    models: list[str]
    inits: list[str]
    bins: list[str]
    best: dict[tuple[str, str, str], float]
    counts: dict[tuple[str, str, str], int]
    diverged: dict[tuple[str, str, str], int]


def init_clip_grid(report: SweepReport) -> Grid:
    trials = [t for t in report.trials if t.outcome != "running" or t.value is not None]
    boundary = clip_boundary(trials)
    order = {"off": 0, "on": 1}
    best: dict[tuple[str, str, str], float] = {}
    counts: dict[tuple[str, str, str], int] = {}
    diverged: dict[tuple[str, str, str], int] = {}
    for t in trials:
        key = (t.model, t.recurrent_init, clip_bin(t, boundary))
        counts[key] = counts.get(key, 0) + 1
        if t.outcome == "diverged":
            diverged[key] = diverged.get(key, 0) + 1
        if t.value is not None:
            old = best.get(key)
            better = old is None or (t.value < old if report.minimize else t.value > old)
            if better:
                best[key] = t.value
    bins = sorted({k[2] for k in counts}, key=lambda b: (order.get(b, 2), b.startswith(">")))
    return Grid(
        models=sorted({k[0] for k in counts}),
        inits=sorted({k[1] for k in counts}),
        bins=bins,
        best=best,
        counts=counts,
        diverged=diverged,
    )


# --- best, worst, diverged -----------------------------------------------------------------
def best_and_worst(report: SweepReport) -> tuple[TrialRow | None, TrialRow | None]:
    valued = report.valued()
    if not valued:
        return None, None
    return valued[0], (valued[-1] if len(valued) > 1 else None)


def diverged_trials(report: SweepReport) -> list[TrialRow]:
    return [t for t in report.trials if t.outcome == "diverged"]


def describe_setting(trial: TrialRow) -> str:
    """'irnn, init identity, no clipping, lr 90' — what a trial trained with, in one phrase."""
    parts = [trial.model, f"init {trial.recurrent_init}"]
    if trial.clip_mode == "none":
        parts.append("no clipping")
    elif trial.clip_threshold is not None:
        parts.append(f"clip {trial.clip_mode} {trial.clip_threshold:.3g}")
    lr = trial.params.get("train.lr", trial.config.get("train.lr"))
    if lr is not None:
        parts.append(f"lr {float(lr):.3g}")
    return ", ".join(parts)
