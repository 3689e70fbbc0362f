"""Run (or resume) a sweep: Ray Tune + OptunaSearch over the plan, tracked in MLflow.

The recipe: check everything, create the sweep folder and parent run, start (or join) Ray,
run the Tuner, export the Optuna study, re-train the winner on fresh seeds, summarise.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rnnlab.collector import long_lived_objects_frozen
from rnnlab.config import ConfigError
from rnnlab.sweep.plan import SweepPlan
from rnnlab.sweep.settings import SweepSettings
from rnnlab.sweep.space import parse_search_space
from rnnlab.sweep.state import STATE_FILE, SweepRecord
from rnnlab.tracking import runs

PLAN_FILE = "plan.json"
TUNE_DIR = "tune"
FINAL_DIR = "final"
STUDY_FILE = "optuna.db"

# The tracking endpoint of each sweep this driver runs. A restored Tuner unpickles its
# callbacks, whose server address is stale; they look the live one up here.
ACTIVE_ENDPOINTS: dict[str, str] = {}


@dataclass
class SweepSummary:
    name: str
    folder: str
    experiment: str
    tracking_uri: str
    parent_run_id: str
    metric: str
    mode: str
    status: str
    counts: dict[str, int] = field(default_factory=dict)
    best_value: float | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    best_run_id: str | None = None
    final: dict[str, Any] = field(default_factory=dict)
    disk_bytes: int = 0
    wall_seconds: float = 0.0


# --- plan persistence (resume uses exactly what the first run resolved) ------------------
def save_plan(plan: SweepPlan, search_raw: dict[str, Any]) -> None:
    data = {
        "settings": plan.settings.model_dump(mode="json"),
        "search": search_raw,
        "bases": plan.bases,
        "name": plan.name,
        "metric": plan.metric,
        "mode": plan.mode,
        "overrides": plan.overrides,
    }
    (plan.folder / PLAN_FILE).write_text(json.dumps(data, indent=2, default=str))


def load_plan(folder: Path) -> tuple[SweepPlan, dict[str, Any]]:
    from rnnlab.config import validate_run_config

    data = json.loads((folder / PLAN_FILE).read_text())
    settings = SweepSettings.model_validate(data["settings"])
    space = parse_search_space(data["search"])
    bases = data["bases"]
    base_cfg = validate_run_config(json.loads(json.dumps(next(iter(bases.values())))))
    plan = SweepPlan(
        settings=settings,
        space=space,
        bases=bases,
        name=data["name"],
        folder=folder,
        metric=data["metric"],
        mode=data["mode"],
        base_cfg=base_cfg,
        overrides=data.get("overrides", []),
    )
    return plan, data["search"]


def search_raw_of(plan: SweepPlan) -> dict[str, Any]:
    def leaf(p) -> dict[str, Any]:
        if p.kind == "categorical":
            out: dict[str, Any] = {"choices": list(p.choices)}
        else:
            out = {"low": p.low, "high": p.high, "log": p.log}
            if p.kind == "int":
                out["int"] = True
            if p.step is not None:
                out["step"] = p.step
        if p.when:
            out["when"] = dict(p.when)
        return out

    params: dict[str, Any] = {}
    for p in plan.space.params:
        node = params
        parts = p.name.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = leaf(p)
    return {
        "name": plan.space.name,
        "groups": {k: list(v) for k, v in plan.space.groups.items()},
        "params": params,
    }


# --- pre-flight ---------------------------------------------------------------------------
def preflight(plan: SweepPlan) -> None:
    """Everything that can be refused before anything is created.

    The tracking store was already probed by `build_plan` (before its slow validation).
    """
    from rnnlab.registry import check_task_inputs

    exists = (plan.folder / STATE_FILE).exists()
    # A driver that died before saving its record leaves the plan: resuming finishes it.
    started = exists or (plan.folder / PLAN_FILE).exists()
    if plan.settings.resume and not started:
        raise ConfigError(
            f"sweep.resume=true: no sweep named '{plan.name}' in {plan.folder.parent}; "
            "`rnnlab sweeps` lists the sweeps here"
        )
    if not plan.settings.resume and (exists or plan.folder.exists()):
        raise ConfigError(
            f"sweep '{plan.name}' already exists in {plan.folder}; continue it with "
            f"`rnnlab sweep sweep.name={plan.name} sweep.resume=true` or choose another sweep.name"
        )
    cfg = plan.base_cfg
    check_task_inputs(cfg.task)
    if cfg.hardware.name == "ray_cluster":
        from rnnlab.sweep.ray_runtime import cluster_address, prepare_to_join

        prepare_to_join(cluster_address(cfg.hardware.address) or "auto")


def _resources(plan: SweepPlan) -> dict[str, float]:
    hw = plan.base_cfg.hardware
    res = {"cpu": hw.cpus_per_trial}
    if hw.gpus_per_trial:
        res["gpu"] = hw.gpus_per_trial
    return res


def _decision_epochs(plan: SweepPlan) -> tuple[int, ...]:
    """Epochs after which `_scheduler` may stop a trial (plots are drawn before them).

    The median rule may stop a trial at any epoch after its grace period; drawing every
    epoch would cost more than the plots are worth, so there only finished trials have them.
    """
    from rnnlab.sweep.trial import asha_rungs

    s = plan.settings
    if s.scheduler != "asha" or not plan.base_cfg.diagnostics.plots:
        return ()
    max_t = plan.base_cfg.train.max_epochs + 1
    return asha_rungs(min(s.grace_period, max_t), s.reduction_factor, max_t)


def _scheduler(plan: SweepPlan) -> Any:
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule

    s = plan.settings
    # +1: each trial ends with one extra report (its outcome); ASHA must not stop a trial
    # for reaching max_t on its last epoch, which would record it as pruned.
    max_t = plan.base_cfg.train.max_epochs + 1
    if s.scheduler == "asha":
        return ASHAScheduler(
            time_attr="training_iteration",
            max_t=max_t,
            grace_period=min(s.grace_period, max_t),
            reduction_factor=s.reduction_factor,
        )
    if s.scheduler == "median":
        return MedianStoppingRule(
            time_attr="training_iteration", grace_period=s.grace_period, min_samples_required=3
        )
    return FIFOScheduler()


def _searcher(plan: SweepPlan) -> Any:
    import warnings

    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from rnnlab.sweep.samplers import build_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    searcher = OptunaSearch(
        space=plan.space.define_by_run,
        metric=plan.metric,
        mode=plan.mode,
        sampler=build_sampler(plan.settings.sampler, plan.space, plan.settings.seed),
        points_to_evaluate=[dict(p) for p in plan.settings.initial_points] or None,
    )
    return ConcurrencyLimiter(searcher, max_concurrent=plan.settings.max_concurrent)


def _trainable(
    plan: SweepPlan,
    uri: str,
    experiment_id: str,
    parent_run_id: str,
    role: str = "search",
    deadline: float | None = None,
) -> Any:
    from ray import tune

    from rnnlab.sweep.trial import TrialPayload, run_trial

    payload = TrialPayload(
        bases=plan.bases,
        sweep_name=plan.name,
        parent_run_id=parent_run_id,
        experiment_id=experiment_id,
        tracking_uri=uri,
        metric=plan.metric,
        mode=plan.mode,
        role=role,
        deadline=deadline,
        test=plan.settings.test_trials,
        decision_epochs=_decision_epochs(plan),
    )
    return tune.with_resources(tune.with_parameters(run_trial, payload=payload), _resources(plan))


def _tracker(plan: SweepPlan, experiment_id: str, total: int) -> Any:
    from rnnlab.sweep.callbacks import SweepTracker

    return SweepTracker(
        sweep_name=plan.name,
        experiment_id=experiment_id,
        metric=plan.metric,
        mode=plan.mode,
        total=total,
        max_epochs=plan.base_cfg.train.max_epochs,
        time_budget=plan.settings.time_budget,
        progress=plan.settings.progress,
    )


def _run_search(plan: SweepPlan, uri: str, experiment_id: str, parent_run_id: str) -> Any:
    from ray import tune

    s = plan.settings
    path = plan.folder / TUNE_DIR
    deadline = time.time() + s.time_budget - 1.0 if s.time_budget else None
    trainable = _trainable(plan, uri, experiment_id, parent_run_id, deadline=deadline)
    tuner = _restored_or_new(
        plan,
        path,
        trainable,
        lambda: tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric=plan.metric,
                mode=plan.mode,
                search_alg=_searcher(plan),
                scheduler=_scheduler(plan),
                num_samples=s.trials,
                reuse_actors=True,
                time_budget_s=s.time_budget,
            ),
            run_config=tune.RunConfig(
                name=TUNE_DIR,
                storage_path=str(plan.folder),
                failure_config=tune.FailureConfig(max_failures=s.max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=s.keep_checkpoints),
                callbacks=[_tracker(plan, experiment_id, s.trials)],
                verbose=0,
            ),
        ),
    )
    with long_lived_objects_frozen():
        return tuner.fit()


def _restored_or_new(plan: SweepPlan, path: Path, trainable: Any, new: Callable[[], Any]) -> Any:
    """The Tuner of one sweep phase (search or final seeds): restored from `path` when the
    sweep is resumed and the phase had started (finished trials kept, unfinished ones
    continued from their checkpoints), else `new()`."""
    from ray import tune

    if plan.settings.resume and tune.Tuner.can_restore(str(path)):
        return tune.Tuner.restore(
            str(path), trainable=trainable, resume_unfinished=True, resume_errored=False
        )
    return new()


# --- results --------------------------------------------------------------------------------
def _trial_value(result: Any, metric: str) -> float | None:
    metrics = result.metrics or {}
    if metrics.get("rnnlab_outcome") in ("diverged", "failed") or result.error is not None:
        return None
    value = metrics.get(metric)
    if isinstance(value, int | float) and math.isfinite(value) and abs(value) < 1e29:
        return float(value)
    return None


def _best(plan: SweepPlan, grid: Any) -> tuple[Any | None, float | None]:
    best, best_value = None, None
    for result in grid:
        value = _trial_value(result, plan.metric)
        if value is None:
            continue
        if best_value is None or (value < best_value if plan.mode == "min" else value > best_value):
            best, best_value = result, value
    return best, best_value


def export_study(plan: SweepPlan, grid: Any) -> Path:
    """Write the search as an Optuna study (sweep folder/optuna.db) built from Tune's record.

    Built from Tune's final results rather than written live, so the study on disk and
    Tune's record always agree, also after a hard kill and resume (DESIGN.md).
    """
    import optuna

    path = plan.folder / STUDY_FILE
    storage = f"sqlite:///{path}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=plan.name, storage=storage)
    study = optuna.create_study(
        study_name=plan.name,
        storage=storage,
        direction="minimize" if plan.mode == "min" else "maximize",
    )
    dists = plan.space.distributions()
    study.set_user_attr("metric", plan.metric)
    study.set_user_attr("search_space", plan.space.describe())
    for result in grid:
        params = {k: v for k, v in (result.config or {}).items() if k in dists}
        metrics = result.metrics or {}
        outcome = metrics.get("rnnlab_outcome") or (
            "failed" if result.error is not None else "pruned"
        )
        value = metrics.get(plan.metric)
        if (
            result.error is not None
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            state, value = optuna.trial.TrialState.FAIL, None
        else:
            state = optuna.trial.TrialState.COMPLETE
        trial = optuna.trial.create_trial(
            params=params,
            distributions={k: dists[k] for k in params},
            value=value,
            state=state,
            user_attrs={
                "outcome": outcome,
                "run_id": metrics.get("rnnlab_run_id", ""),
                "trial_id": metrics.get("trial_id", ""),
            },
        )
        study.add_trial(trial)
    return path


def _final_evaluation(
    plan: SweepPlan, best: Any, uri: str, experiment_id: str, parent_run_id: str
) -> dict[str, Any]:
    """Re-train the winner on fresh seeds and test it: a winner is reported with its spread."""
    from ray import tune

    n = plan.settings.final_seeds
    if n == 0 or best is None:
        return {}
    params = {k: v for k, v in (best.config or {}).items()}
    base_seed = plan.base_cfg.train.seed
    seeds = [base_seed + 1000 + i for i in range(n)]
    space = {**params, "train.seed": tune.grid_search(seeds)}
    trainable = _trainable(plan, uri, experiment_id, parent_run_id, role="final")
    # Restored after a driver death, as the search is: a fresh Tuner trained every seed again
    # beside the killed ones' runs.
    tuner = _restored_or_new(
        plan,
        plan.folder / FINAL_DIR,
        trainable,
        lambda: _final_tuner(plan, trainable, space, experiment_id),
    )
    with long_lived_objects_frozen():
        grid = tuner.fit()
    retire_lost_trial_runs(uri, experiment_id, plan.name, grid, role="final")
    test_metric = plan.metric.replace("val/", "test/", 1)
    values = []
    for result in grid:
        v = (result.metrics or {}).get(test_metric)
        if (
            isinstance(v, int | float)
            and math.isfinite(v)
            and (result.metrics or {}).get("rnnlab_outcome") != "diverged"
        ):
            values.append(float(v))
    out: dict[str, Any] = {"metric": test_metric, "seeds": seeds, "values": values}
    if values:
        out["mean"] = statistics.fmean(values)
        out["std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def _final_tuner(plan: SweepPlan, trainable: Any, space: dict[str, Any], experiment_id: str) -> Any:
    from ray import tune

    return tune.Tuner(
        trainable,
        param_space=space,
        tune_config=tune.TuneConfig(
            num_samples=1, reuse_actors=True, max_concurrent_trials=plan.settings.max_concurrent
        ),
        run_config=tune.RunConfig(
            name=FINAL_DIR,
            storage_path=str(plan.folder),
            failure_config=tune.FailureConfig(max_failures=plan.settings.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[_final_closer(plan, experiment_id)],
            verbose=0,
        ),
    )


def _final_closer(plan: SweepPlan, experiment_id: str) -> Any:
    from rnnlab.sweep.callbacks import SweepTracker

    return SweepTracker(
        sweep_name=plan.name,
        experiment_id=experiment_id,
        metric=plan.metric,
        mode=plan.mode,
        total=plan.settings.final_seeds,
        max_epochs=plan.base_cfg.train.max_epochs,
        progress=False,
        label="final",
    )


def _counts(uri: str, experiment_id: str, name: str) -> tuple[dict[str, int], list[Any]]:
    from rnnlab.sweep.tracking import sweep_runs

    children = sweep_runs(uri, experiment_id, name, role="search")
    counts: dict[str, int] = {}
    for run in children:
        outcome = run.data.tags.get(runs.OUTCOME_TAG, "unknown")
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts, children


def _is_open(run: Any) -> bool:
    """A run no one has closed yet (a reopened run is tagged `running` before MLflow says so)."""
    return run.info.status == "RUNNING" or run.data.tags.get(runs.OUTCOME_TAG) == "running"


def close_leftover_runs(uri: str, experiment_id: str, name: str, outcome: str) -> int:
    """Nothing may stay RUNNING: close child runs whose trial is no longer running."""
    from rnnlab.sweep.tracking import sweep_runs

    closed = 0
    for run in sweep_runs(uri, experiment_id, name):
        if _is_open(run):
            runs.end_run(runs.RunHandle(uri, run.info.run_id, experiment_id), outcome)
            closed += 1
    return closed


def lost_trial_ids(grid: Any, run_trial_ids: Iterable[str]) -> set[str]:
    """The trial ids of child runs that none of Tune's trials in `grid` owns.

    A trial is known by the `trial_id` Tune puts in every result, or, for a trial that never
    reported, by its folder name, which contains its id. An empty grid knows nothing, so
    it disowns nothing.
    """
    known: set[str] = set()
    folders: list[str] = []
    for result in grid:
        tid = (result.metrics or {}).get("trial_id")
        if tid:
            known.add(str(tid))
        if getattr(result, "path", None):
            folders.append(Path(result.path).name)
    if not known and not folders:
        return set()
    return {
        tid
        for tid in run_trial_ids
        if tid and tid not in known and not any(tid in folder for folder in folders)
    }


def retire_lost_trial_runs(
    uri: str, experiment_id: str, name: str, grid: Any, role: str = "search"
) -> int:
    """Take child runs of trials Tune forgot out of the search (or the final evaluation,
    `role="final"`); return how many.

    Tune saves its experiment state at most every 10 s. When the driver is killed hard, a
    trial started after the last save is unknown to the resumed search, which starts a new
    trial in its place. The forgotten trial's run keeps what it logged, but is re-tagged
    `rnnlab.role=lost` (and closed as stopped if still open), so a sweep's search children
    are exactly the trials of its Optuna study.
    """
    from rnnlab.sweep.tracking import sweep_runs

    children = sweep_runs(uri, experiment_id, name, role=role)
    lost = lost_trial_ids(grid, [r.data.tags.get("rnnlab.trial_id", "") for r in children])
    c = runs.client(uri)
    retired = 0
    for run in children:
        if run.data.tags.get("rnnlab.trial_id", "") not in lost:
            continue
        c.set_tag(run.info.run_id, "rnnlab.role", "lost")
        if _is_open(run):
            runs.end_run(runs.RunHandle(uri, run.info.run_id, experiment_id), "stopped")
        retired += 1
    return retired


def folder_size(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, f))
    return total


# --- the driver -------------------------------------------------------------------------------
FOLDER_TAG = "rnnlab.sweep_folder"


def _sweep_parent(
    plan: SweepPlan, uri: str, search_raw: dict[str, Any], adopt: bool
) -> runs.RunHandle:
    """The sweep's parent run, with its tags, params and search space.

    With `adopt`, a resumed sweep without a record first looks for the parent run its driver
    had created before dying (same sweep name and folder) and continues it, so the sweep
    keeps one parent run and none is left RUNNING. Params it already holds are skipped.
    """
    from rnnlab.sweep.tracking import reopen_run

    cfg = plan.base_cfg
    parent = _created_parent(uri, cfg.tracking.experiment, plan) if adopt else None
    if parent is None:
        parent = runs.start_run(
            uri,
            cfg.tracking.experiment,
            plan.name,
            tags={
                "rnnlab.sweep": plan.name,
                "rnnlab.role": "sweep",
                FOLDER_TAG: str(plan.folder),
                "rnnlab.search_space": plan.space.describe()[:5000],
                "rnnlab.sampler": plan.settings.sampler,
                "rnnlab.scheduler": plan.settings.scheduler,
                "rnnlab.metric": plan.metric,
            },
            artifact_location=cfg.tracking.artifact_location,
        )
    else:
        reopen_run(parent)
    settings = plan.settings.model_dump(mode="json")
    runs.log_params(
        parent,
        {**{f"sweep.{k}": v for k, v in settings.items()}, **runs.flatten(cfg.to_dict())},
    )
    runs.log_text(parent, json.dumps(search_raw, indent=2), "search_space.json")
    return parent


def _created_parent(uri: str, experiment: str, plan: SweepPlan) -> runs.RunHandle | None:
    from rnnlab.sweep.tracking import sweep_runs

    exp = runs.client(uri).get_experiment_by_name(experiment)
    if exp is None:
        return None
    found = sweep_runs(uri, exp.experiment_id, plan.name, role="sweep")
    mine = [r for r in found if r.data.tags.get(FOLDER_TAG) == str(plan.folder)]
    if not mine:
        return None
    # The dead driver's run is still RUNNING; a finished one there belonged to an earlier
    # sweep of the same name whose folder was deleted since.
    latest = max(mine, key=lambda r: (r.info.status == "RUNNING", r.info.start_time))
    return runs.RunHandle(uri, latest.info.run_id, exp.experiment_id)


def run_sweep(plan: SweepPlan) -> SweepSummary:
    from rnnlab.sweep.ray_runtime import cluster_address, ray_session
    from rnnlab.sweep.tracking import trial_tracking_uri

    started = time.monotonic()
    cfg = plan.base_cfg
    resume = plan.settings.resume
    if resume:
        plan, search_raw = load_plan(plan.folder)
        plan.settings = plan.settings.model_copy(update={"resume": True})
        # No record: the driver died before saving one (see `_sweep_parent`).
        record = SweepRecord.load(plan.folder) if (plan.folder / STATE_FILE).exists() else None
        status = record.effective_status() if record is not None else "interrupted"
        if status == "running":
            raise ConfigError(
                f"sweep '{plan.name}' is still running (pid {record.pid} on {record.host})"
            )
        if status == "finished":
            raise ConfigError(
                f"sweep '{plan.name}' already finished; `rnnlab sweeps show {plan.name}` shows its results"
            )
        cfg = plan.base_cfg
    else:
        plan.folder.mkdir(parents=True, exist_ok=False)
        search_raw = search_raw_of(plan)
        save_plan(plan, search_raw)
        record = None

    try:
        with contextlib.ExitStack() as stack:
            uri, experiment_id, wait_for_tracking = stack.enter_context(
                trial_tracking_uri(
                    cfg.tracking.uri,
                    plan.folder,
                    cfg.tracking.experiment,
                    cfg.tracking.artifact_location,
                )
            )
            hw = cfg.hardware
            address = (cluster_address(hw.address) or "auto") if hw.name == "ray_cluster" else None
            # Ray starts, and then trials start, while the tracking server boots (~10 s):
            # the driver writes its parent run straight into the store, and each trial
            # waits for the server before its first write (trial.run_trial).
            stack.enter_context(ray_session(address, num_cpus=None if address else os.cpu_count()))
            tracking_failed = stack.enter_context(_tracking_ready(wait_for_tracking))
            direct = cfg.tracking.uri  # the store itself (`uri` is its server, if one fronts it)
            ACTIVE_ENDPOINTS[plan.name] = uri
            if record is None:
                parent = _sweep_parent(plan, direct, search_raw, adopt=resume)
                record = SweepRecord(
                    name=plan.name,
                    folder=str(plan.folder),
                    status="running",
                    tracking_uri=cfg.tracking.uri,
                    experiment=cfg.tracking.experiment,
                    experiment_id=experiment_id,
                    parent_run_id=parent.run_id,
                    metric=plan.metric,
                    mode=plan.mode,
                    trials=plan.settings.trials,
                    overrides=plan.overrides,
                )
            else:
                record.status, record.pid = "running", os.getpid()
                from rnnlab.sweep.tracking import reopen_run

                reopen_run(runs.RunHandle(direct, record.parent_run_id, experiment_id))
            record.save()
            parent_handle = runs.RunHandle(uri, record.parent_run_id, experiment_id)

            with _graceful_stop() as stop:
                grid = _run_search(plan, uri, experiment_id, record.parent_run_id)
                if tracking_failed.wait():
                    # No trial could log; the parent was written straight to the store.
                    runs.end_run(
                        runs.RunHandle(direct, record.parent_run_id, experiment_id), "stopped"
                    )
                    raise tracking_failed.error  # type: ignore[misc]
                interrupted = stop.requested
                retire_lost_trial_runs(uri, experiment_id, plan.name, grid)
                study_path = export_study(plan, grid)
                runs.log_artifact_file(parent_handle, study_path)
                best, best_value = _best(plan, grid)
                final: dict[str, Any] = {}
                if not interrupted:
                    leftover = "budget" if plan.settings.time_budget else "stopped"
                    close_leftover_runs(uri, experiment_id, plan.name, leftover)
                    final = _final_evaluation(plan, best, uri, experiment_id, record.parent_run_id)
                    interrupted = stop.requested

            counts, _children = _counts(uri, experiment_id, plan.name)
            # A trial Tune aborted before it opened a run still counts (as failed).
            unrecorded = len(grid) - sum(counts.values())
            if unrecorded > 0:
                counts["failed"] = counts.get("failed", 0) + unrecorded
            summary = SweepSummary(
                name=plan.name,
                folder=str(plan.folder),
                experiment=cfg.tracking.experiment,
                tracking_uri=cfg.tracking.uri,
                parent_run_id=record.parent_run_id,
                metric=plan.metric,
                mode=plan.mode,
                status="interrupted" if interrupted else "finished",
                counts=counts,
                best_value=best_value,
                best_params=dict(best.config) if best is not None else {},
                best_run_id=(best.metrics or {}).get("rnnlab_run_id") if best is not None else None,
                final=final,
                disk_bytes=folder_size(plan.folder),
                wall_seconds=time.monotonic() - started,
            )
            _record_on_parent(parent_handle, summary)
            if interrupted:
                close_leftover_runs(uri, experiment_id, plan.name, "stopped")
                runs.end_run(parent_handle, "stopped")
            else:
                runs.end_run(parent_handle, "completed")
            record.status = summary.status
            record.summary = asdict(summary)
            record.save()
            return summary
    except BaseException:
        if record is not None:
            record.status = "interrupted"
            record.save()
        raise
    finally:
        ACTIVE_ENDPOINTS.pop(plan.name, None)


class _TrackingWatch:
    """The outcome of waiting for the sweep's tracking server beside the search."""

    def __init__(self) -> None:
        self.error: BaseException | None = None
        self.done = threading.Event()

    def wait(self) -> bool:
        """Block until the server answered or failed; True if it failed."""
        self.done.wait()
        return self.error is not None


@contextlib.contextmanager
def _tracking_ready(wait: Callable[[], str]) -> Iterator[_TrackingWatch]:
    """Wait for the tracking server in a thread, so Ray and the trials start meanwhile.

    If the server never answers, the search is stopped as Ctrl-C stops it (SIGUSR1 to Tune,
    sent only once Tune listens for it) and the driver raises the server's error after it.
    """
    watch = _TrackingWatch()
    finished = threading.Event()

    def run() -> None:
        try:
            wait()
        except BaseException as exc:
            watch.error = exc
            watch.done.set()
            # Tune installs a new SIGUSR1 handler per run and never removes it: one left by an
            # earlier search in this process (a benchmark, a test) is signalled in vain, so
            # every handler that appears is signalled once, until the search is over.
            signalled: Any = None
            while not finished.wait(0.2):
                handler = signal.getsignal(signal.SIGUSR1)
                if handler in (signal.SIG_DFL, signal.SIG_IGN, None) or handler is signalled:
                    continue
                os.kill(os.getpid(), signal.SIGUSR1)
                signalled = handler
        finally:
            watch.done.set()

    thread = threading.Thread(target=run, name="rnnlab-tracking-wait", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        finished.set()
        thread.join(timeout=5)


class _StopRequest:
    requested = False


@contextlib.contextmanager
def _graceful_stop() -> Iterator[_StopRequest]:
    """Ctrl-C or SIGTERM: ask Tune to stop gracefully (state saved, resumable), once.

    Tune's own SIGINT handler is off (TUNE_DISABLE_SIGINT_HANDLER) so that we know the sweep
    was interrupted; Tune still listens on SIGUSR1, which we forward. A second signal
    raises KeyboardInterrupt for a hard stop that still runs our cleanup.
    """
    stop = _StopRequest()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        print(
            "\nstopping the sweep after saving its state (again to stop at once) ...",
            file=sys.stderr,
            flush=True,
        )
        os.kill(os.getpid(), signal.SIGUSR1)

    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _record_on_parent(handle: runs.RunHandle, summary: SweepSummary) -> None:
    metrics: dict[str, float] = {f"sweep/trials_{k}": float(v) for k, v in summary.counts.items()}
    if summary.best_value is not None:
        metrics["sweep/best_" + summary.metric.replace("/", "_")] = summary.best_value
    final = summary.final
    if final.get("values"):
        key = final["metric"].replace("/", "_")
        metrics[f"final/{key}_mean"] = final["mean"]
        metrics[f"final/{key}_std"] = final["std"]
        metrics["final/seeds"] = float(len(final["values"]))
    metrics["sweep/disk_mb"] = summary.disk_bytes / 1e6
    runs.log_metrics(handle, metrics)
    tags = {"rnnlab.status": summary.status}
    if summary.best_run_id:
        tags["rnnlab.best_run_id"] = summary.best_run_id
    runs.set_tags(handle, tags)
    runs.log_text(handle, json.dumps(asdict(summary), indent=2, default=str), "summary.json")


def print_summary(summary: SweepSummary, stream: Any = None) -> None:
    out = stream or sys.stdout
    p = lambda s="": print(s, file=out)  # noqa: E731
    p()
    p(f"sweep {summary.name}: {summary.status} in {summary.wall_seconds:.0f} s")
    p("  trials: " + ", ".join(f"{n} {k}" for k, n in sorted(summary.counts.items())))
    if summary.best_value is not None:
        p(f"  best {summary.metric}: {summary.best_value:.5g}  (run {summary.best_run_id})")
        winner = _winner(summary.best_params)
        if winner:
            p(f"  winner: {winner}")
        for key, value in sorted(summary.best_params.items()):
            p(f"    {key} = {value}")
    final = summary.final
    if final.get("values"):
        p(
            f"  final ({len(final['values'])} seeds): {final['metric']} = {final['mean']:.5g} ± {final['std']:.2g}"
        )
    p(f"  folder: {summary.folder}  ({summary.disk_bytes / 1e6:.1f} MB on disk)")
    p(
        f"  MLflow: experiment '{summary.experiment}', parent run {summary.parent_run_id} ({summary.tracking_uri})"
    )
    if summary.status == "interrupted":
        p(f"  resume: rnnlab sweep sweep.name={summary.name} sweep.resume=true")
    if summary.tracking_uri.startswith("sqlite:"):
        p("  open the UI: rnnlab ui")


def _winner(params: dict[str, Any]) -> str:
    parts = []
    if "group.model" in params:
        parts.append(f"model={params['group.model']}")
    for key in ("model.init.recurrent", "model.init.input"):
        if key in params:
            parts.append(f"{key.split('.')[-1]} init={params[key]}")
    mode = params.get("train.clip.mode")
    if mode is not None:
        threshold = params.get("train.clip.threshold")
        if mode == "none":
            parts.append("no clipping")
        elif isinstance(threshold, int | float):
            parts.append(f"clip {mode} at {threshold:.3g}")
        else:  # the threshold was not searched: the config's applies
            parts.append(f"clip {mode}")
    return ", ".join(parts)
