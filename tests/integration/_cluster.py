"""A two-node Ray cluster on loopback for tests, run in a helper process we can tear down whole.

Why not `ray start`: with Ray 2.60 on Linux, `ray start` rewrites `127.0.0.1` (in
`--node-ip-address` and in `--address`) to the machine's routable IP
(`services.resolve_ip_for_localhost`), and the one switch that stops that
(RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) makes `ray start --address` refuse to add a node.
`ray.cluster_utils.Cluster` (what Ray's own fault tests use) takes the node IP as given and
never refuses, so its nodes run with the switch on and both listen on 127.0.0.1 only; nodes
are told apart by node ID. The driver under test gets no switch: rnnlab must cope
(`rnnlab.sweep.ray_runtime.prepare_to_join`).

The cluster runs in a helper process (this file as a script) in its own session, not in
pytest: Cluster writes the "current cluster" file of its Ray temp dir and keeps Ray state
in the process that starts it. The helper answers one JSON line per command on stdout:

    (start)  {"address": "127.0.0.1:PORT", "head": NODE_ID, "worker": NODE_ID}
    actors   {"actors": [{"pid": ..., "node_id": ..., "class": ..., "state": ...}, ...]}
    remove   {"removed": NODE_ID}      the worker node's processes are SIGKILLed
    stop     {"stopped": true}         (also on stdin EOF)

Set RNNLAB_KEEP_TEST_RAY=1 to keep the Ray temp dir (every node's logs) after a test.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PREFIX = "CLUSTER "
# Nodes notice a dead peer in ~3 s instead of Ray's default ~30 s (5 checks, 3 s apart).
FAST_FAILURE_DETECTION = {
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 1000,
    "health_check_failure_threshold": 3,
}


def ray_environment(root: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a driver joining the test cluster (the `rnnlab sweep` under test).

    Its own Ray temp dir (no collision with anyone's /tmp/ray) and its own auth token: Ray
    2.60 turns token auth on for a new head when ~/.ray/auth_token exists, and a node or
    driver without the same token is refused, so every process gets the same one explicitly.
    No loopback switch: joining a loopback cluster without it is what rnnlab must handle.
    """
    env = dict(os.environ if base is None else base)
    for key in ("RAY_ADDRESS", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_AUTH_TOKEN"):
        env.pop(key, None)
    token = root / "auth_token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    env.update(
        {
            "RAY_TMPDIR": str(root),  # Ray adds /ray
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(token),
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    return env


def node_environment(driver_env: dict[str, str]) -> dict[str, str]:
    """The nodes' environment: the loopback switch on, so Ray's own processes that connect
    to the cluster by address (the job agent, workers) don't rewrite 127.0.0.1 either.
    `Cluster.add_node` does not go through `ray start`, so the switch refuses nothing."""
    return {**driver_env, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def _session_pids(sid: int) -> list[int]:
    """Processes of one session: the helper, every node's daemons and Ray workers."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp session ...
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


class LoopbackCluster:
    """Test side: start the helper, send it commands, tear everything down."""

    def __init__(self, root: Path | None = None, dashboard_port: int | None = None) -> None:
        # Ray's Unix socket paths must stay short (~107 bytes): a pytest tmp_path is too deep.
        self.root = Path(root or tempfile.mkdtemp(prefix="rnnlab-ray-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.env = ray_environment(self.root)
        self.log_path = self.root / "cluster-helper.log"
        self.process: subprocess.Popen | None = None
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.info: dict[str, Any] = {}
        # The head's dashboard (job submission API) on loopback, if asked for.
        self.dashboard_port = dashboard_port

    # --- life cycle ------------------------------------------------------------------------
    def begin_start(self) -> None:
        """Start the helper without waiting (e.g. while the MLflow server boots too)."""
        (self.root / "ray").mkdir(exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, __file__, str(self.root), str(self.dashboard_port or 0)],
                env=node_environment(self.env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        threading.Thread(target=self._pump, daemon=True).start()

    def wait_started(self, timeout: float = 120.0) -> dict[str, Any]:
        self.info = self._answer(timeout)
        return self.info

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(PREFIX):
                self.lines.put(line[len(PREFIX) :])
        self.lines.put(None)

    def _answer(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"cluster helper silent for {timeout:g} s; {self.log_tail()}"
            ) from None
        if line is None:
            raise AssertionError(f"cluster helper exited; {self.log_tail()}")
        answer = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"cluster helper: {answer['error']}; {self.log_tail()}")
        return answer

    def request(self, command: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._answer(timeout)

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return "no helper log"
        text = self.log_path.read_text(errors="replace").strip().splitlines()
        return "helper log tail:\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        """Stop the cluster; then SIGKILL anything left in the helper's session; remove files."""
        process = self.process
        if process is not None:
            if process.poll() is None:
                with contextlib.suppress(Exception):
                    self.request("stop", timeout=30)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=10)
            # Ray workers set their own process group but stay in the helper's session;
            # anything still there (helper stuck, or killed before its cleanup) is SIGKILLed.
            deadline = time.monotonic() + 10
            while (left := _session_pids(process.pid)) and time.monotonic() < deadline:
                for pid in left:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.2)
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)
            self.process = None
        if not os.environ.get("RNNLAB_KEEP_TEST_RAY"):
            shutil.rmtree(self.root, ignore_errors=True)

    # --- questions -------------------------------------------------------------------------
    @property
    def address(self) -> str:
        return self.info["address"]

    def node_of_pid(self) -> dict[int, str]:
        """pid -> node ID of every actor the cluster ever ran (dead ones included)."""
        return {a["pid"]: a["node_id"] for a in self.request("actors")["actors"] if a["pid"]}

    def remove_worker(self) -> str:
        return self.request("remove", timeout=90)["removed"]


# --- helper process -----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _say(payload: dict[str, Any]) -> None:
    sys.stdout.write(PREFIX + json.dumps(payload) + "\n")
    sys.stdout.flush()


def _wait_for_job_agent(cluster: Any, timeout: float = 120.0) -> None:
    """Block until the head's dashboard agent has registered its address with the GCS.

    Job submission goes through that agent; the head's job API looks its address up and gives
    up after 10 s ("No available agent to submit job"). On a busy machine the agent registers
    well after the nodes are up, so a test that submits at once would fail for that alone.
    """
    from ray._private.ray_constants import KV_NAMESPACE_DASHBOARD
    from ray._raylet import GcsClient
    from ray.dashboard.consts import DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX

    client = GcsClient(address=cluster.gcs_address)
    key = f"{DASHBOARD_AGENT_ADDR_NODE_ID_PREFIX}{cluster.head_node.node_id}".encode()
    deadline = time.monotonic() + timeout
    while not client.internal_kv_get(key, KV_NAMESPACE_DASHBOARD, timeout=5):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the head's dashboard agent did not register within {timeout:g} s")
        time.sleep(0.2)


def main(root: str, dashboard_port: int = 0) -> None:
    from ray.cluster_utils import Cluster

    temp_dir = str(Path(root) / "ray")
    node_args = {
        "node_ip_address": "127.0.0.1",
        "num_cpus": 1,
        "include_dashboard": False,
        "temp_dir": temp_dir,
    }
    # The head's agent would take Ray's fixed default port (52365), which another Ray
    # instance on this machine may hold; job submission goes through that agent.
    head_args = {
        **node_args,
        "_system_config": FAST_FAILURE_DETECTION,
        "dashboard_agent_listen_port": _free_port(),
    }
    if dashboard_port:
        head_args.update(
            include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=dashboard_port
        )
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    worker = cluster.add_node(**node_args)
    cluster.wait_for_nodes()
    if dashboard_port:
        _wait_for_job_agent(cluster)
    _say(
        {
            "address": cluster.address,
            "head": cluster.head_node.node_id,
            "worker": worker.node_id,
        }
    )
    try:
        for line in sys.stdin:
            command = line.strip()
            try:
                if command == "actors":
                    table = cluster.global_state.actor_table(None)
                    actors = [
                        {
                            "pid": a["Pid"],
                            "node_id": a["Address"]["NodeID"],
                            "class": a["ActorClassName"],
                            "state": a["State"],
                        }
                        for a in table.values()
                    ]
                    _say({"actors": actors})
                elif command == "remove":
                    cluster.remove_node(worker, allow_graceful=False)
                    _say({"removed": worker.node_id})
                elif command == "stop":
                    break
                else:
                    _say({"error": f"unknown command {command!r}"})
            except Exception as exc:  # answer, so the test fails with the reason
                _say({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        cluster.shutdown()
        _say({"stopped": True})


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
