"""What a sweep report is made of: its record, and one row per trial from Optuna and MLflow.

A finished sweep has its Optuna study on disk (`optuna.db`, exported from Tune's record)
whose trials carry `run_id` and `outcome`; a running sweep may have none yet, or an older
one. So trials are read from both and joined by run id: the study gives the value the
sampler saw (the best epoch), MLflow gives everything else (the outcome tag of record, the
full config, diagnostics tags) and the trials the study does not know yet (their value is
the best epoch in the run's metric history).
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.config import ConfigError
from rnnlab.sweep.state import STATE_FILE, SweepRecord, list_sweeps

PENALTY_MAGNITUDE = 1e29  # diverged trials carry ±1e30 (sweep/trial.py): not a real value
STUDY_FILE = "optuna.db"
PLAN_FILE = "plan.json"


@dataclass
class TrialRow:
    """One search trial as the report sees it."""

    number: int
    run_id: str
    outcome: str  # completed | pruned | diverged | failed | running | ...
    value: float | None  # the metric's best epoch; None when there is no real value
    params: dict[str, Any] = field(default_factory=dict)  # sampled values, typed
    config: dict[str, str] = field(default_factory=dict)  # the run's flattened config params
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        return self.config.get("model.name") or str(self.params.get("group.model", "?"))

    @property
    def recurrent_init(self) -> str:
        return str(
            self.params.get("model.init.recurrent") or self.config.get("model.init.recurrent", "?")
        )

    @property
    def clip_mode(self) -> str:
        return str(self.params.get("train.clip.mode") or self.config.get("train.clip.mode", "?"))

    @property
    def clip_threshold(self) -> float | None:
        value = self.params.get("train.clip.threshold", self.config.get("train.clip.threshold"))
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


@dataclass
class SweepReport:
    record: SweepRecord
    folder: Path
    trials: list[TrialRow]
    distributions: dict[str, Any]  # Optuna distributions of the searched parameters
    study_trials: int = 0  # trials in optuna.db (0: not exported yet)

    @property
    def minimize(self) -> bool:
        return self.record.mode == "min"

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t.outcome] = out.get(t.outcome, 0) + 1
        return dict(sorted(out.items()))

    def valued(self) -> list[TrialRow]:
        """Trials with a real value, best first."""
        rows = [t for t in self.trials if t.value is not None]
        return sorted(rows, key=lambda t: t.value if self.minimize else -t.value)  # type: ignore[operator]


def real_value(value: Any) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    value = float(value)
    if not math.isfinite(value) or abs(value) >= PENALTY_MAGNITUDE:
        return None
    return value


def resolve_sweep_folder(name: str, root: Path | str = "rnnlab-sweeps") -> Path:
    """The folder of sweep `name` under `root` (or `name` itself if it is a sweep folder)."""
    direct = Path(name)
    if (direct / STATE_FILE).exists():
        return direct.resolve()
    root = Path(root).resolve()
    folder = root / name
    if (folder / STATE_FILE).exists():
        return folder
    known = ", ".join(r.name for r in list_sweeps(root)) or "none"
    raise ConfigError(f"no sweep named '{name}' in {root}; sweeps here: {known}")


def _typed(value: str, dist: Any) -> Any:
    """A sampled value as MLflow stored it (a string), back in its distribution's type."""
    import optuna

    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        for choice in dist.choices:
            if str(choice) == value:
                return choice
        return value
    if isinstance(dist, optuna.distributions.IntDistribution):
        return int(float(value))
    return float(value)


def _distributions(folder: Path) -> dict[str, Any]:
    from rnnlab.sweep.space import parse_search_space

    path = folder / PLAN_FILE
    if not path.exists():
        return {}
    return parse_search_space(json.loads(path.read_text())["search"]).distributions()


def _study_trials(folder: Path, name: str) -> list[Any]:
    import optuna

    path = folder / STUDY_FILE
    if not path.exists():
        return []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            study = optuna.load_study(study_name=name, storage=f"sqlite:///{path}")
        except KeyError:
            return []
        return study.get_trials(deepcopy=False)


def _best_in_history(client: Any, run_id: str, metric: str, minimize: bool) -> float | None:
    values = [real_value(m.value) for m in client.get_metric_history(run_id, metric)]
    values = [v for v in values if v is not None]
    if not values:
        return None
    return min(values) if minimize else max(values)


def load_sweep_report(sweep_folder: Path) -> SweepReport:
    """Read a sweep's record, Optuna study and MLflow child runs (finished or running)."""
    from rnnlab.sweep.tracking import sweep_runs
    from rnnlab.tracking import runs

    folder = Path(sweep_folder).resolve()
    if not (folder / STATE_FILE).exists():
        raise ConfigError(f"{folder} is not a sweep folder (no {STATE_FILE})")
    record = SweepRecord.load(folder)
    record.status = record.effective_status()
    minimize = record.mode == "min"
    distributions = _distributions(folder)
    study = _study_trials(folder, record.name)
    by_run = {str(t.user_attrs.get("run_id", "")): t for t in study if t.user_attrs.get("run_id")}
    for t in study:
        for key, dist in t.distributions.items():
            distributions.setdefault(key, dist)

    client = runs.client(record.tracking_uri)
    children = sweep_runs(record.tracking_uri, record.experiment_id, record.name, role="search")
    children.sort(key=lambda r: r.info.start_time or 0)
    rows: list[TrialRow] = []
    seen: set[str] = set()
    for number, run in enumerate(children):
        run_id = run.info.run_id
        seen.add(run_id)
        outcome = run.data.tags.get(runs.OUTCOME_TAG, "unknown")
        trial = by_run.get(run_id)
        sampled = {
            k[len("sampled.") :]: v for k, v in run.data.params.items() if k.startswith("sampled.")
        }
        if trial is not None:
            params = dict(trial.params)
            value = real_value(trial.value)
        else:
            params = {
                k: _typed(v, distributions[k]) if k in distributions else v
                for k, v in sampled.items()
            }
            value = _best_in_history(client, run_id, record.metric, minimize)
        if outcome in ("diverged", "failed"):
            value = None
        rows.append(
            TrialRow(
                number=trial.number if trial is not None else len(study) + number,
                run_id=run_id,
                outcome=outcome,
                value=value,
                params=params,
                config=dict(run.data.params),
                tags=dict(run.data.tags),
            )
        )
    for trial in study:  # trials that never opened a run (e.g. failed at start)
        run_id = str(trial.user_attrs.get("run_id", ""))
        if run_id and run_id in seen:
            continue
        rows.append(
            TrialRow(
                number=trial.number,
                run_id=run_id,
                outcome=str(trial.user_attrs.get("outcome", "failed")),
                value=None,
                params=dict(trial.params),
            )
        )
    return SweepReport(record, folder, rows, distributions, study_trials=len(study))
