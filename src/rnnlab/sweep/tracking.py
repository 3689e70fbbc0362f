"""MLflow for sweeps: the parent run, finding a trial's child run again, and a loopback server.

SQLite takes one writer at a time, so a sweep on the embedded store starts a local MLflow
server on 127.0.0.1 (one process) and every trial logs over HTTP (DESIGN.md). The driver
creates the experiment directly first, so its artifacts stay in ./mlruns where
`rnnlab train`, `rnnlab eval` and `rnnlab ui` find them without a server.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rnnlab.tracking import runs


def find_trial_run(uri: str, experiment_id: str, sweep_name: str, trial_id: str) -> str | None:
    """The child run a trial opened before (a retry or resume continues it)."""
    c = runs.client(uri)
    found = c.search_runs(
        [experiment_id],
        filter_string=f"tags.`rnnlab.sweep` = '{sweep_name}' and tags.`rnnlab.trial_id` = '{trial_id}'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


def sweep_runs(uri: str, experiment_id: str, sweep_name: str, role: str | None = None) -> list[Any]:
    c = runs.client(uri)
    filt = f"tags.`rnnlab.sweep` = '{sweep_name}'"
    if role:
        filt += f" and tags.`rnnlab.role` = '{role}'"
    out: list[Any] = []
    token = None
    while True:
        page = c.search_runs(
            [experiment_id], filter_string=filt, max_results=1000, page_token=token
        )
        out.extend(page)
        token = page.token
        if not token:
            return out


def reopen_run(handle: runs.RunHandle) -> None:
    """A retried or resumed trial continues its child run: mark it running again."""
    c = runs.client(handle.uri)
    c.update_run(handle.run_id, status="RUNNING")
    c.set_tag(handle.run_id, runs.OUTCOME_TAG, "running")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def trial_tracking_uri(
    uri: str, folder: Path, experiment: str, artifact_location: str | None
) -> Iterator[tuple[str, str]]:
    """Yield (uri trials log to, experiment id); a loopback server fronts a SQLite store."""
    c = runs.client(uri)
    experiment_id = runs.get_or_create_experiment(c, experiment, artifact_location)
    if not uri.startswith("sqlite:"):
        yield uri, experiment_id
        return
    from rnnlab.tracking.server import running_server

    artifacts = folder / "mlflow-server-artifacts"
    with running_server(
        uri,
        artifacts,
        host="127.0.0.1",
        port=free_port(),
        workers=1,
        log_path=folder / "mlflow-server.log",
    ) as (_process, server):
        yield server, experiment_id
