"""MLflow for sweeps: the parent run, finding a trial's child run again, and a loopback server.

SQLite takes one writer at a time, so a sweep on the embedded store starts a local MLflow
server on 127.0.0.1 (one process) and every trial logs over HTTP (DESIGN.md). The driver
creates the experiment directly first, so its artifacts stay in ./mlruns where
`rnnlab train`, `rnnlab eval` and `rnnlab ui` find them without a server.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
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


class LoopbackServer:
    """An MLflow server on 127.0.0.1 in front of a SQLite store, tied to this driver's life.

    `start()` returns at once so Ray can start meanwhile; `wait()` blocks until healthy.
    """

    def __init__(self, backend_uri: str, folder: Path) -> None:
        self.backend_uri = backend_uri
        self.folder = folder
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = folder / "mlflow-server.log"

    def start(self) -> LoopbackServer:
        from rnnlab.tracking.server import build_server_command, server_environment
        from rnnlab.tracking.sqlite_template import ensure_sqlite_store

        # A server that serves artifacts gives experiments `mlflow-artifacts:/<id>` locations.
        ensure_sqlite_store(self.backend_uri, artifact_root="mlflow-artifacts:/")
        command = build_server_command(
            self.backend_uri,
            self.folder / "mlflow-server-artifacts",
            "127.0.0.1",
            self.port,
            workers=1,
        )
        tethered = [
            sys.executable,
            "-m",
            "rnnlab.tracking.tether",
            str(os.getpid()),
            "--",
            *command,
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                tethered,
                env=server_environment(self.backend_uri),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal is the driver's, not the server's
            )
        return self

    def wait(self, timeout: float = 90.0) -> str:
        from rnnlab.tracking.server import wait_until_healthy

        assert self.process is not None
        try:
            wait_until_healthy(self.uri, timeout=timeout, process=self.process)
        except BaseException:
            self.stop()
            raise
        return self.uri

    def stop(self) -> None:
        from rnnlab.tracking.server import stop_server

        if self.process is not None:
            stop_server(self.process, timeout=3.0)
            self.process = None


@contextlib.contextmanager
def trial_tracking_uri(
    uri: str, folder: Path, experiment: str, artifact_location: str | None
) -> Iterator[tuple[str, str, Callable[[], str]]]:
    """Yield (uri trials log to, experiment id, wait): a loopback server fronts a SQLite store.

    The experiment is created directly first, so its artifact location is a local folder
    every process here can write (and `rnnlab ui` can read) without the server.
    """
    c = runs.client(uri)
    experiment_id = runs.get_or_create_experiment(c, experiment, artifact_location)
    if not uri.startswith("sqlite:"):
        yield uri, experiment_id, lambda: uri
        return
    server = LoopbackServer(uri, folder).start()
    try:
        yield server.uri, experiment_id, server.wait
    finally:
        server.stop()
