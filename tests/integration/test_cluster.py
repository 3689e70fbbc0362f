"""A sweep on a real two-node Ray cluster (both nodes on loopback) logging to an MLflow server.

`rnnlab sweep hardware=ray_cluster tracking=server` runs as a user would run it on the head
node, against a head and a second node started by `tests/integration/_cluster.py` (see there
why `ray.cluster_utils.Cluster` rather than `ray start`). Both nodes have IP 127.0.0.1, so
which node ran a trial is told by node ID: the pid in the trial's Tune results, looked up in
the GCS actor table. Everything is torn down in finalizers, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient
from tests.conftest import cli_environment, rnnlab_command
from tests.integration._cluster import LoopbackCluster
from tests.integration._sweeps import TINY_PROBLEM

from rnnlab.tracking.server import start_server, stop_server

# Each trial takes seconds; one CPU per node and one per trial, so two trials run at once,
# necessarily one on each node.
TINY = [
    *TINY_PROBLEM,
    "sweep.scheduler=none",
    "sweep.final_seeds=0",
    "sweep.max_concurrent=2",
    "hardware.cpus_per_trial=1",
]
# Long enough (4 epochs of 32 batches) to kill a node while one of its trials is mid-way.
LONGER = [
    *TINY,
    "task.seq_len=20",
    "task.train_size=512",
    "model.hidden_size=16",
    "train.batch_size=16",
    "train.max_epochs=4",
    "train.early_stopping.enabled=false",
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Stack:
    """The cluster, the tracking server and the folder the sweep runs in."""

    def __init__(self, cluster: LoopbackCluster, uri: str, folder: Path) -> None:
        self.cluster = cluster
        self.uri = uri
        self.folder = folder
        self.storage = folder / "sweeps"

    def sweep_command(self, name: str, *overrides: str) -> list[str]:
        return [
            *rnnlab_command(),
            "sweep",
            "hardware=ray_cluster",
            f"hardware.address={self.cluster.address}",
            "tracking=server",
            f"tracking.uri={self.uri}",
            f"hardware.storage_path={self.storage}",
            f"sweep.name={name}",
            *overrides,
        ]

    @property
    def env(self) -> dict[str, str]:
        return cli_environment(self.cluster.env)

    def trial_results(self, name: str) -> list[dict[str, Any]]:
        """Every result line Tune wrote for the sweep's trials (shared storage path)."""
        out = []
        for path in sorted((self.storage / name / "tune").glob("*/result.json")):
            for line in path.read_text().splitlines():
                if line.strip():
                    with contextlib.suppress(ValueError):  # a line being written right now
                        out.append(json.loads(line))
        return out

    def children(self, name: str) -> list[Any]:
        client = MlflowClient(tracking_uri=self.uri)
        exp = client.get_experiment_by_name("rnnlab")
        return client.search_runs(
            [exp.experiment_id],
            filter_string=f"tags.`rnnlab.sweep` = '{name}' and tags.`rnnlab.role` = 'search'",
            run_view_type=ViewType.ALL,
        )

    def all_runs(self) -> list[Any]:
        client = MlflowClient(tracking_uri=self.uri)
        exp = client.get_experiment_by_name("rnnlab")
        return client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL)


@contextlib.contextmanager
def _stack(folder: Path, dashboard: bool = False) -> Iterator[Stack]:
    """A two-node loopback cluster and an MLflow server, started side by side."""
    cluster = LoopbackCluster(dashboard_port=_free_port() if dashboard else None)
    server: list[subprocess.Popen] = []
    errors: list[BaseException] = []
    port = _free_port()

    def start_tracking() -> None:
        try:
            server.append(
                start_server(
                    f"sqlite:///{folder / 'mlflow.db'}",
                    folder / "mlartifacts",
                    port=port,
                    log_path=folder / "mlflow-server.log",
                    timeout=120,  # a loaded 2-core CI machine
                )
            )
        except BaseException as exc:
            errors.append(exc)

    tracking = threading.Thread(target=start_tracking)
    try:
        cluster.begin_start()
        tracking.start()
        cluster.wait_started(timeout=150)
        tracking.join()
        if errors:
            raise errors[0]
        yield Stack(cluster, f"http://127.0.0.1:{port}", folder)
    finally:
        if tracking.is_alive():
            tracking.join()  # never leave a server starting behind us
        for process in server:
            stop_server(process)
        cluster.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One cluster (with the head's dashboard, for job submission) and server for the module.

    Starting them takes ~20 s on a loaded machine, so the sweeps share them, each under its
    own name. The node-kill test removes the worker node: it is the last test here to use it.
    """
    with _stack(tmp_path_factory.mktemp("cluster"), dashboard=True) as running:
        yield running


def _run(stack: Stack, cwd: Path, name: str, *overrides: str, timeout: float = 240) -> str:
    proc = subprocess.run(
        stack.sweep_command(name, *overrides),
        cwd=cwd,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _wait_for(predicate: Callable[[], Any], timeout: float, proc: subprocess.Popen) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"sweep exited early with {proc.returncode}: {out[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:g} s")


def _assert_every_trial_is_one_finished_child_run(stack: Stack, name: str, trials: int) -> list:
    results = stack.trial_results(name)
    trial_ids = {r["trial_id"] for r in results}
    assert len(trial_ids) == trials, trial_ids
    children = stack.children(name)
    assert len(children) == trials, [c.data.tags.get("rnnlab.trial_id") for c in children]
    assert {c.data.tags["rnnlab.trial_id"] for c in children} == trial_ids
    assert {r["rnnlab_run_id"] for r in results if "rnnlab_run_id" in r} == {
        c.info.run_id for c in children
    }
    for child in children:
        assert child.info.status == "FINISHED", (child.info.run_id, child.info.status)
        assert child.data.tags["rnnlab.outcome"] == "completed"
        assert "sampled.model.init.recurrent" in child.data.params
    running = [r.info.run_id for r in stack.all_runs() if r.info.status == "RUNNING"]
    assert running == []
    state = json.loads((stack.storage / name / "sweep.json").read_text())
    assert state["status"] == "finished"
    assert sum(state["summary"]["counts"].values()) == trials
    # The study the driver exports lives in the shared sweep folder, agreeing with Tune.
    import optuna

    study = optuna.load_study(
        study_name=name, storage=f"sqlite:///{stack.storage / name / 'optuna.db'}"
    )
    assert {t.user_attrs["run_id"] for t in study.trials} == {c.info.run_id for c in children}
    return children


@pytest.mark.slow
def test_sweep_on_two_node_cluster_runs_trials_on_both_nodes_and_logs_each_to_the_server(
    stack, tmp_path
):
    t0 = time.monotonic()
    out = _run(stack, tmp_path, "two-nodes", *TINY, "sweep.trials=4")
    assert "sweep two-nodes: finished" in out

    node_of_pid = stack.cluster.node_of_pid()
    nodes_of_trial: dict[str, set[str]] = {}
    for result in stack.trial_results("two-nodes"):
        nodes_of_trial.setdefault(result["trial_id"], set()).add(node_of_pid[result["pid"]])
    assert all(len(nodes) == 1 for nodes in nodes_of_trial.values()), nodes_of_trial
    used = set().union(*nodes_of_trial.values())
    assert used == {stack.cluster.info["head"], stack.cluster.info["worker"]}, nodes_of_trial

    _assert_every_trial_is_one_finished_child_run(stack, "two-nodes", trials=4)
    print(f"two-node sweep: {time.monotonic() - t0:.0f} s")


@pytest.mark.slow
def test_sweep_submitted_with_ray_job_submit_runs_its_driver_on_the_head(stack, tmp_path):
    """docs/cluster.md's way: `ray job submit -- rnnlab sweep ...`, the address from RAY_ADDRESS."""
    t0 = time.monotonic()
    ray_cli = str(Path(rnnlab_command()[0]).with_name("ray"))
    command = [
        c
        for c in stack.sweep_command("job", *TINY, "sweep.trials=2")
        if "hardware.address" not in c
    ]
    proc = subprocess.run(
        [
            ray_cli,
            "job",
            "submit",
            "--address",
            f"http://127.0.0.1:{stack.cluster.dashboard_port}",
            "--",
            *command,
        ],
        cwd=tmp_path,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "sweep job: finished" in out and "succeeded" in out, out[-4000:]
    actors = stack.cluster.request("actors")["actors"]
    supervisors = {a["node_id"] for a in actors if a["class"] == "JobSupervisor"}
    assert supervisors == {stack.cluster.info["head"]}  # the driver ran on the head node
    _assert_every_trial_is_one_finished_child_run(stack, "job", trials=2)
    print(f"job-submitted sweep: {time.monotonic() - t0:.0f} s")


@pytest.mark.slow
def test_node_killed_mid_sweep_its_trial_is_retried_on_the_survivor_and_sweep_completes(
    stack, tmp_path
):
    t0 = time.monotonic()
    head, worker = stack.cluster.info["head"], stack.cluster.info["worker"]
    proc = subprocess.Popen(
        stack.sweep_command("node-kill", *LONGER, "sweep.trials=4", "sweep.max_failures=2"),
        cwd=tmp_path,
        env=stack.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:

        def trial_mid_way_on_worker() -> dict[str, Any] | None:
            # A reported epoch means a checkpoint exists for the retry to continue from.
            running = [
                r
                for r in stack.trial_results("node-kill")
                if r.get("rnnlab_pid") and not r.get("rnnlab_done") and r["epoch"] < 2
            ]
            if not running:
                return None
            node_of_pid = stack.cluster.node_of_pid()
            return next((r for r in running if node_of_pid.get(r["pid"]) == worker), None)

        victim = _wait_for(trial_mid_way_on_worker, 150, proc)
        assert stack.cluster.remove_worker() == worker
        killed_at = time.time()
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-4000:]
    assert f"retry     {victim['trial_id']}" in out, out[-4000:]

    children = _assert_every_trial_is_one_finished_child_run(stack, "node-kill", trials=4)
    # Once the node is gone, every result comes from the head.
    node_of_pid = stack.cluster.node_of_pid()
    after = [r for r in stack.trial_results("node-kill") if r["timestamp"] >= killed_at + 2]
    assert after and {node_of_pid[r["pid"]] for r in after} == {head}
    # The victim finished on the head, in the same child run, continuing from a checkpoint:
    # epoch 0 logged once (a restart from scratch would log it twice). The epoch in flight
    # when the node died may be logged twice: its metrics reach MLflow before its
    # checkpoint reaches Tune. Read from MLflow: Tune's result files lag behind under load.
    run = next(c for c in children if c.info.run_id == victim["rnnlab_run_id"])
    assert run.data.tags["rnnlab.outcome"] == "completed"
    assert run.data.tags["rnnlab.node_id"] == head
    history = MlflowClient(stack.uri).get_metric_history(run.info.run_id, "val/loss")
    steps = sorted(m.step for m in history)
    assert set(steps) == {0, 1, 2, 3} and steps.count(0) == 1, steps
    resumed = [r for r in after if r["trial_id"] == victim["trial_id"] and not r.get("rnnlab_done")]
    assert all(r["epoch"] >= 1 for r in resumed), resumed
    print(f"node-kill sweep: {time.monotonic() - t0:.0f} s")


def test_unreachable_cluster_address_fails_in_seconds_with_one_line(tmp_path, run_cli):
    """ray.init(address=...) would retry forever; the sweep must say why and stop."""
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    t0 = time.monotonic()
    rc, out, err = run_cli(
        tmp_path, "sweep", "hardware=ray_cluster", f"hardware.address={address}", *TINY, timeout=120
    )
    assert rc == 2, out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"no Ray cluster answers at {address}" in lines[0], err
    assert time.monotonic() - t0 < 60  # the CLI's own start-up; the probe itself takes < 2 s
