"""Create, describe and close MLflow runs through MlflowClient (no fluent global state).

Using the client explicitly lets the same code run in the CLI, in DDP rank 0 and in Ray
workers, each pointing at the store the driver resolved.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

import rnnlab
from rnnlab.tracking.sqlite_uri import sqlite_path

OUTCOME_TAG = "rnnlab.outcome"
OUTCOMES = ("running", "completed", "pruned", "diverged", "failed", "budget", "stopped")
_STATUS_BY_OUTCOME = {
    "completed": "FINISHED",
    "pruned": "FINISHED",
    "budget": "FINISHED",
    "stopped": "KILLED",
    "diverged": "FAILED",
    "failed": "FAILED",
}
_MAX_PARAM_LEN = 6000


def quiet_mlflow_logs() -> None:
    """Alembic prints its migrations on every new SQLite store; users don't need that."""
    for name in ("alembic", "alembic.runtime.migration", "mlflow.store.db.utils"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # MLflow prints "View run ... at http://..." on every run it ends against a server.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


def client(uri: str):
    from mlflow.tracking import MlflowClient

    quiet_mlflow_logs()
    return MlflowClient(tracking_uri=uri)


def flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def git_state(start: Path | None = None) -> dict[str, str]:
    """Commit and dirtiness of the repo holding the working directory (or rnnlab's source)."""
    for where in (start or Path.cwd(), Path(rnnlab.__file__).resolve().parent):
        try:
            commit = subprocess.run(
                ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5
            )
            if commit.returncode != 0:
                continue
            status = subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=where,
                capture_output=True,
                text=True,
                timeout=5,
            )
            return {
                "rnnlab.git_commit": commit.stdout.strip(),
                "mlflow.source.git.commit": commit.stdout.strip(),
                "rnnlab.git_dirty": str(bool(status.stdout.strip())).lower(),
            }
        except (OSError, subprocess.SubprocessError):
            continue
    return {"rnnlab.git_commit": "unknown", "rnnlab.git_dirty": "unknown"}


def get_or_create_experiment(
    mlflow_client: Any, name: str, artifact_location: str | None = None
) -> str:
    """The experiment's id, creating it if needed.

    With no `artifact_location`, an experiment in a SQLite store keeps its artifacts in
    `mlruns/` beside the database file. MLflow's client would put them in `./mlruns` of
    whatever the working directory is, so a store named by an absolute path collected
    artifacts in every folder it was used from.
    """
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(exp.experiment_id)
        return exp.experiment_id
    uri = mlflow_client.tracking_uri
    try:
        if artifact_location is None and (db := sqlite_path(uri)) is not None:
            return _create_beside_database(uri, db, name)
        return mlflow_client.create_experiment(name, artifact_location=artifact_location)
    except Exception:
        # Another process created it between our lookup and create.
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _create_beside_database(uri: str, db: Path, name: str) -> str:
    """Create through a store whose default artifact root is `mlruns/` beside the database:
    MLflow then names the folder by the experiment's id, as it does for `./mlruns`."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    folder = db.resolve().parent
    store = SqlAlchemyStore(uri, str(folder / "mlruns"))
    try:
        return store.create_experiment(name)
    finally:
        store.engine.dispose()


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_PARAM_LEN else text[: _MAX_PARAM_LEN - 3] + "..."


@dataclass
class RunHandle:
    """Just enough to reach a run again from any process."""

    uri: str
    run_id: str
    experiment_id: str


def start_run(
    uri: str,
    experiment: str,
    run_name: str,
    tags: Mapping[str, str] | None = None,
    parent_run_id: str | None = None,
    artifact_location: str | None = None,
) -> RunHandle:
    from rnnlab.tracking.sqlite_template import ensure_sqlite_store

    ensure_sqlite_store(uri)  # a new store in seconds less than MLflow's migrations take
    c = client(uri)
    exp_id = get_or_create_experiment(c, experiment, artifact_location)
    all_tags = {
        "rnnlab.version": rnnlab.__version__,
        OUTCOME_TAG: "running",
        **git_state(),
        **(dict(tags) if tags else {}),
    }
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    run = c.create_run(exp_id, run_name=run_name, tags=all_tags)
    return RunHandle(uri=uri, run_id=run.info.run_id, experiment_id=exp_id)


def log_params(handle: RunHandle, params: Mapping[str, Any]) -> None:
    """Log params in batches of 100 (MLflow's per-request limit), skipping ones already set."""
    from mlflow.entities import Param

    c = client(handle.uri)
    existing = c.get_run(handle.run_id).data.params
    items = [Param(k, _param_value(v)) for k, v in params.items() if k not in existing]
    for i in range(0, len(items), 100):
        c.log_batch(handle.run_id, params=items[i : i + 100])


def log_config(
    handle: RunHandle, config: Mapping[str, Any], extra_params: Mapping[str, Any] | None = None
) -> None:
    """The resolved config as flat params and as `config.yaml`, plus installed packages."""
    params = flatten(config)
    if extra_params:
        params.update(extra_params)
    log_params(handle, params)
    log_text(handle, yaml.safe_dump(dict(config), sort_keys=False), "config.yaml")
    log_text(handle, installed_packages(), "environment/packages.txt")


def log_text(handle: RunHandle, text: str, artifact_file: str) -> None:
    client(handle.uri).log_text(handle.run_id, text, artifact_file)


@functools.cache
def installed_packages() -> str:
    """`name==version` of every installed distribution, one per line (cached per process).

    `Distribution.metadata` parses each whole METADATA file with the email parser, long
    description included: 0.15-0.26 s for ~440 distributions, paid by every run's set-up
    (0.01 s this way; docs/benchmarks.md). Name and Version sit in the header, before the
    first blank line, so only that part is read.
    """
    lines = set()
    for dist in metadata.distributions():
        fields = _header_fields(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")
        if fields.get("Name") and fields.get("Version"):
            lines.add(f"{fields['Name']}=={fields['Version']}")
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def _header_fields(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.partition("\n\n")[0].splitlines():
        key, sep, value = line.partition(":")
        if sep and key in ("Name", "Version") and key not in fields:
            fields[key] = value.strip()
    return fields


def set_tags(handle: RunHandle, tags: Mapping[str, Any]) -> None:
    from mlflow.entities import RunTag

    client(handle.uri).log_batch(handle.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def log_metrics(handle: RunHandle, metrics: Mapping[str, float], step: int = 0) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items()]
    c = client(handle.uri)
    for i in range(0, len(items), 1000):
        c.log_batch(handle.run_id, metrics=items[i : i + 1000])


def logged_steps(handle: RunHandle) -> dict[str, set[int]]:
    """Every (metric, step) the run already holds: what a resumed run must not log again."""
    c = client(handle.uri)
    keys = c.get_run(handle.run_id).data.metrics
    return {k: {m.step for m in c.get_metric_history(handle.run_id, k)} for k in keys}


def end_run(handle: RunHandle, outcome: str) -> None:
    """Record the outcome tag and the matching MLflow status; never leave a run RUNNING."""
    c = client(handle.uri)
    c.set_tag(handle.run_id, OUTCOME_TAG, outcome)
    c.set_terminated(handle.run_id, status=_STATUS_BY_OUTCOME.get(outcome, "FAILED"))


def log_artifact_file(
    handle: RunHandle, path: str | os.PathLike[str], artifact_path: str | None = None
) -> None:
    client(handle.uri).log_artifact(handle.run_id, str(path), artifact_path)
