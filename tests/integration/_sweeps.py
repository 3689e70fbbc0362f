"""What the sweep test modules share: the `rnnlab` command, a sweep folder's MLflow store and
Tune results, a sweep's runs, and trials slow enough to be killed in the middle."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# A 10-step adding problem and a net small enough for seconds per trial.
TINY_PROBLEM = [
    "task=adding",
    "task.seq_len=10",
    "task.train_size=128",
    "task.val_size=64",
    "task.test_size=64",
    "model.hidden_size=8",
    "train.batch_size=32",
    "train.max_epochs=2",
]
# A sweep sized to seconds per trial.
TINY_SWEEP = [
    *TINY_PROBLEM,
    "sweep.final_seeds=0",
    "sweep.progress=false",
]

# Trials of a few seconds per epoch on 2 cores: long enough to kill a process mid-trial.
SLOW_TRIALS = [
    "task=adding",
    "task.seq_len=20",
    "task.train_size=1024",
    "task.val_size=128",
    "task.test_size=64",
    "model.hidden_size=32",
    "train.batch_size=16",
    "train.max_epochs=4",
    "train.early_stopping.enabled=false",
    "sweep.scheduler=none",
    "sweep.final_seeds=0",
    "sweep.max_concurrent=2",
]


def rnnlab_cli() -> tuple[list[str], dict[str, str]]:
    """The `rnnlab` command and the environment the CLI tests run it in."""
    from tests.conftest import cli_environment, rnnlab_command

    return rnnlab_command(), cli_environment()


def store_client(folder: Path) -> Any:
    """An MlflowClient on `folder/mlflow.db`, the store `rnnlab sweep` uses by default."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def sweep_runs(client: Any, experiment_id: str, sweep: str, role: str = "search") -> list[Any]:
    """The runs of one sweep with one role: `search` (trials), `final` (seeds), `sweep`, `lost`."""
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.`rnnlab.sweep` = '{sweep}' and tags.`rnnlab.role` = '{role}'",
    )


def tune_results(folder: Path, phase: str = "tune", sweep: str = "*") -> list[dict]:
    """Every result Tune has written so far under the sweep folder; `phase` is `tune` (the
    search) or `final` (the final seeds)."""
    out = []
    for path in folder.glob(f"rnnlab-sweeps/{sweep}/{phase}/*/result.json"):
        for line in path.read_text().splitlines():
            if line.strip():
                with contextlib.suppress(ValueError):
                    out.append(json.loads(line))
    return out


def wait_for(
    predicate: Callable[[], Any], timeout: float, proc: subprocess.Popen | None = None
) -> Any:
    """Poll until `predicate()` is truthy; fail at once if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"sweep exited early with {proc.returncode}: {output}")
        time.sleep(0.5)
    raise AssertionError("timed out")


def kill_sweep_when(
    args: list[str],
    folder: Path,
    env: dict[str, str],
    ready: Callable[[], Any],
    timeout: float,
    settle: float = 0.0,
) -> None:
    """Run `rnnlab sweep` (`args`) in `folder` and SIGKILL it once `ready()` is truthy (after
    `settle` more seconds): a driver dying hard. Waits for Ray's reaper afterwards."""
    proc = subprocess.Popen(
        args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for(ready, timeout, proc)
        time.sleep(settle)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(3)  # Ray's reaper tears down the orphaned workers


def resume_sweep(cmd: list[str], env: dict[str, str], folder: Path, name: str) -> None:
    """`rnnlab sweep sweep.name=NAME sweep.resume=true` in `folder`; it must exit 0."""
    try:
        resumed = subprocess.run(
            [*cmd, "sweep", f"sweep.name={name}", "sweep.resume=true"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as exc:
        # Once seen, never explained: keep what the resumed driver printed before it hung.
        said = "".join(
            part.decode(errors="replace") if isinstance(part, bytes) else part
            for part in (exc.stdout or "", exc.stderr or "")
        )
        raise AssertionError(
            f"resumed sweep still running after 600 s; it printed:\n{said}"
        ) from exc
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
