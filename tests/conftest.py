"""Fixtures shared by the whole suite.

- `run_cli`: run the real `rnnlab` command in a folder of the test's choosing, as a user would.
- `mlflow_store`: an `MlflowClient` on `sqlite:///<folder>/mlflow.db`, plus small look-ups.
- `tiny`: overrides that keep a CLI training run to a few seconds.
- `train_in_process(folder, *overrides)`: a tracked run without the CLI, in its own store.

Add a fixture here only when two or more test modules need it; keep each one documented.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = Path(__file__).resolve().parent

# A CLI run sized to take seconds: adding problem at T=30, 256 training sequences.
TINY_ADDING = (
    "task=adding",
    "task.seq_len=30",
    "task.train_size=256",
    "task.val_size=64",
    "task.test_size=64",
    "model.hidden_size=16",
)


class CliResult(NamedTuple):
    """What a user sees of one `rnnlab` invocation; unpacks as (rc, stdout, stderr)."""

    rc: int
    stdout: str
    stderr: str


def rnnlab_command() -> list[str]:
    """The installed console script of the interpreter running the tests (same venv)."""
    script = Path(sys.executable).with_name("rnnlab")
    if script.exists():
        return [str(script)]
    exe = shutil.which("rnnlab")
    return [exe] if exe else [sys.executable, "-m", "rnnlab.cli"]


def cli_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without anything that would point rnnlab or MLflow elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "RAY_ADDRESS", "PL_", "HYDRA_"))
    }
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def train_in_process(folder: Path, *overrides: str) -> tuple[Any, str]:
    """`train_tracked` on `rnnlab train` overrides, in `folder`'s own SQLite store.

    The CLI's start-up cost left out, for tests about what a run records rather than about
    the command. Returns the TrackedResult and the store's URI.
    """
    from rnnlab.cli import load_run_config
    from rnnlab.training.tracked import train_tracked

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    return train_tracked(load_run_config("train", [*overrides, f"tracking.uri={uri}"])), uri


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., CliResult]:
    """`run_cli(cwd, *args, env=None, timeout=300)`: run `rnnlab *args` as a subprocess in `cwd`.

    A subprocess (not `cli.main` in-process) because what we promise is about the command:
    exit codes, stderr lines, and the files left in the working directory.
    """

    def run(
        cwd: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 300
    ) -> CliResult:
        proc = subprocess.run(
            [*rnnlab_command(), *args],
            cwd=cwd,
            env=cli_environment(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture(scope="session")
def tiny() -> tuple[str, ...]:
    """Overrides for a training run of a few seconds on the adding problem."""
    return TINY_ADDING


class MlflowStore:
    """An MlflowClient on one SQLite store, with the look-ups the tests repeat."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / "mlflow.db"
        self.uri = f"sqlite:///{self.path}"
        self._client: Any = None

    @property
    def client(self) -> Any:
        """Opened on first use, so holding the fixture never creates `mlflow.db` itself."""
        if self._client is None:
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    def runs(self, experiment: str = "rnnlab") -> list[Any]:
        """Every run of `experiment` (all lifecycle stages); [] when the store or it is absent."""
        from mlflow.entities import ViewType

        if not self.path.exists():
            return []
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            return []
        return self.client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)

    def only_run(self, experiment: str = "rnnlab") -> Any:
        runs = self.runs(experiment)
        assert len(runs) == 1, f"expected exactly one run, found {len(runs)}"
        return runs[0]

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of every logged value of `key`, in step order."""
        return sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, key))

    def artifacts(self, run_id: str, path: str | None = None) -> list[str]:
        return [a.path for a in self.client.list_artifacts(run_id, path)]


@pytest.fixture
def mlflow_store(tmp_path: Path) -> Iterator[MlflowStore]:
    """The store a CLI run in `tmp_path` writes by default (`sqlite:///mlflow.db` there)."""
    yield MlflowStore(tmp_path)


@pytest.fixture(scope="session")
def open_store() -> Callable[[Path], MlflowStore]:
    """`open_store(folder)`: the default store of another folder (e.g. a second working dir)."""
    return MlflowStore


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with the most `slow` tests first; test order within a file is kept.

    `make test` hands whole files to two processes in this order (`--dist loadfile
    --no-loadscope-reorder`): starting the longest files first keeps one process from
    finishing a long sweep file alone at the end while the other idles.
    """
    slow: dict[str, int] = {}
    for item in items:
        weight = 1 if item.get_closest_marker("slow") else 0
        slow[item.location[0]] = slow.get(item.location[0], 0) + weight
    items.sort(key=lambda item: -slow[item.location[0]])
