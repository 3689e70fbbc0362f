"""A real `mlflow server` on a free loopback port: health, logging, and its security checks.

One server serves the whole module (it takes ~10 s to start); the fixture's finalizer
stops its whole process group, so no server outlives the tests.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import socket
import subprocess
import time

import pytest

from rnnlab.config import ConfigError
from rnnlab.tracking.probe import probe_tracking_uri
from rnnlab.tracking.server import (
    BACKEND_URI_ENV,
    build_server_command,
    redact_uri,
    resolve_backend_uri,
    server_environment,
    start_server,
    stop_server,
    wait_until_healthy,
)

SECRET = "do-not-serve-this-file"
INVALID_HOST = "Invalid Host header - possible DNS rebinding attack detected"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _group_is_gone(pgid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_server")
    (root / "secret.txt").write_text(SECRET)
    port = _free_port()
    with pytest.MonkeyPatch.context() as mp:
        # Only loopback traffic: no telemetry; and a broken server fails a test in seconds,
        # not after MLflow's minutes of retries.
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        mp.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        process = start_server(
            backend_uri=f"sqlite:///{root / 'mlflow.db'}",
            artifacts_dir=root / "artifacts",
            port=port,
            log_path=root / "server.log",
            timeout=90,  # a loaded CI machine can take half a minute
        )
        try:
            yield {"uri": f"http://127.0.0.1:{port}", "port": port, "root": root}
        finally:
            stop_server(process)
            assert _group_is_gone(process.pid), "MLflow server processes outlived stop_server"


def _request(port: int, method: str, path: str, host: str | None = None, body: bytes | None = None):
    """Send `path` byte for byte (no client-side normalisation of `..`)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host or f"127.0.0.1:{port}")
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()


def _message(body: str) -> str:
    try:
        return json.loads(body).get("message", body)
    except ValueError:
        return body


# --- the command line, no server needed -------------------------------------------------


def test_server_command_binds_loopback_with_allowed_hosts_and_proxied_artifacts(tmp_path):
    cmd = build_server_command("sqlite:////data/mlflow.db", tmp_path / "art", port=5055)
    assert cmd[1:4] == ["-m", "mlflow", "server"]
    assert "--serve-artifacts" in cmd
    opts = {a: cmd[i + 1] for i, a in enumerate(cmd) if a.startswith("--") and i + 1 < len(cmd)}
    assert opts["--host"] == "127.0.0.1"
    assert opts["--port"] == "5055"
    assert opts["--backend-store-uri"] == "sqlite:////data/mlflow.db"
    assert opts["--artifacts-destination"] == str((tmp_path / "art").resolve())
    assert opts["--workers"] == "1"  # SQLite: one writer
    assert set(opts["--allowed-hosts"].split(",")) >= {"127.0.0.1:5055", "localhost:5055"}


def test_server_command_options_exist_in_installed_mlflow(tmp_path):
    from mlflow.cli import server as mlflow_server_command

    known = {o for p in mlflow_server_command.params for o in (*p.opts, *p.secondary_opts)}
    cmd = build_server_command("postgresql://u@db/mlflow", tmp_path, "0.0.0.0", 5000, "mlflow:5000")
    used = {a for a in cmd if a.startswith("--")}
    assert used <= known, used - known


def test_database_password_never_reaches_the_command_line(tmp_path):
    uri = "postgresql://mlflow:s3cret@db:5432/mlflow"
    cmd = build_server_command(uri, tmp_path, allowed_hosts=["mlflow:5000"])
    assert not any("s3cret" in part for part in cmd)
    assert "--backend-store-uri" not in cmd
    assert server_environment(uri, base={})[BACKEND_URI_ENV] == uri
    assert "s3cret" not in redact_uri(uri) and "***" in redact_uri(uri)
    with pytest.raises(ConfigError, match="contains a password"):
        resolve_backend_uri(uri, env={})
    assert resolve_backend_uri(None, env={BACKEND_URI_ENV: uri}) == uri


def test_backend_defaults_to_sqlite_in_working_directory(tmp_path):
    assert resolve_backend_uri(None, env={}, cwd=tmp_path) == f"sqlite:///{tmp_path}/mlflow.db"


def test_exposing_the_server_requires_explicit_allowed_hosts(tmp_path):
    with pytest.raises(ConfigError, match="allowed_hosts"):
        build_server_command("sqlite:////x.db", tmp_path, host="0.0.0.0")
    with pytest.raises(ConfigError, match="DNS-rebinding"):
        build_server_command("sqlite:////x.db", tmp_path, allowed_hosts="*")
    cmd = build_server_command("sqlite:////x.db", tmp_path, "0.0.0.0", 5000, "mlflow.lab:5000")
    assert cmd[cmd.index("--allowed-hosts") + 1].startswith("mlflow.lab:5000,")


def test_busy_port_is_refused_before_starting_anything(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        t0 = time.monotonic()
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            start_server(f"sqlite:///{tmp_path / 'm.db'}", tmp_path / "a", port=port, timeout=5)
        assert time.monotonic() - t0 < 2


def test_unreachable_tracking_uri_fails_in_under_three_seconds_with_one_line():
    t0 = time.monotonic()
    with pytest.raises(ConfigError) as info:
        probe_tracking_uri("http://127.0.0.1:9", timeout=2.0)
    assert time.monotonic() - t0 < 3
    message = str(info.value)
    assert "\n" not in message
    assert "http://127.0.0.1:9" in message and "unreachable" in message


def test_wait_until_healthy_gives_up_on_a_silent_port():
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="not healthy"):
        wait_until_healthy(f"http://127.0.0.1:{_free_port()}", timeout=1.0)
    assert time.monotonic() - t0 < 4


# --- against the running server ---------------------------------------------------------


def test_health_answers_ok_and_probe_accepts_server(server):
    assert _request(server["port"], "GET", "/health") == (200, "OK")
    probe_tracking_uri(server["uri"])


def test_run_logged_with_mlflow_client_lands_in_database_and_artifact_root(server, tmp_path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server["uri"])
    exp_id = client.create_experiment("server-test")
    run = client.create_run(exp_id, run_name="trial-0")
    client.log_param(run.info.run_id, "model.cell", "lstm")
    client.log_metric(run.info.run_id, "val/loss", 0.25, step=1)
    note = tmp_path / "note.txt"
    note.write_text("hello from a worker")
    client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)

    fetched = MlflowClient(tracking_uri=server["uri"]).get_run(run.info.run_id)
    assert fetched.data.params == {"model.cell": "lstm"}
    assert fetched.data.metrics == {"val/loss": 0.25}
    assert fetched.info.status == "FINISHED"
    assert fetched.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = list((server["root"] / "artifacts").rglob("note.txt"))
    assert [p.read_text() for p in stored] == ["hello from a worker"]
    assert (server["root"] / "mlflow.db").stat().st_size > 0


def test_foreign_host_header_is_refused(server):
    path = "/api/2.0/mlflow/experiments/search?max_results=1"
    status, _ = _request(server["port"], "GET", path)
    assert status == 200  # the same request with our own Host header works
    # 10.0.0.5 passes MLflow's own default (private IPs); our loopback-only list refuses it.
    hosts = ("evil.example", f"evil.example:{server['port']}", "127.0.0.1.evil.example")
    for host in (*hosts, f"10.0.0.5:{server['port']}"):
        status, body = _request(server["port"], "GET", path, host=host)
        assert (status, body) == (403, INVALID_HOST), host
    status, _ = _request(
        server["port"],
        "POST",
        "/api/2.0/mlflow/experiments/create",
        "evil.example",
        b'{"name": "x"}',
    )
    assert status == 403


@pytest.mark.parametrize(
    "path",
    [
        "../secret.txt",
        "..%2Fsecret.txt",
        "%2E%2E/secret.txt",
        "ok/../../secret.txt",
        "ok/%2E%2E%2F%2E%2E%2Fsecret.txt",
    ],
)
def test_artifact_path_with_parent_segments_is_rejected(server, path):
    port = server["port"]
    for prefix in (
        "/api/2.0/mlflow-artifacts/artifacts/",
        "/ajax-api/2.0/mlflow-artifacts/artifacts/",
    ):
        status, body = _request(port, "GET", prefix + path)
        assert (status, "Invalid path") == (400, _message(body)), (prefix + path, body)

        status, body = _request(port, "PUT", prefix + path.replace("secret", "escaped"), body=b"x")
        assert (status, "Invalid path") == (400, _message(body)), (prefix + path, body)
    assert not list(server["root"].rglob("escaped.txt"))
    assert (server["root"] / "secret.txt").read_text() == SECRET


def test_artifact_upload_inside_the_root_still_works(server):
    status, _ = _request(
        server["port"], "PUT", "/api/2.0/mlflow-artifacts/artifacts/ok/fine.txt", body=b"fine"
    )
    assert status == 200
    assert (server["root"] / "artifacts" / "ok" / "fine.txt").read_text() == "fine"
    assert _request(server["port"], "GET", "/api/2.0/mlflow-artifacts/artifacts/ok/fine.txt") == (
        200,
        "fine",
    )


def test_run_artifact_endpoints_reject_parent_segments(server):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server["uri"])
    run = client.create_run(client.create_experiment("traversal"))
    run_id = run.info.run_id
    for path in ("../../secret.txt", "..%2F..%2Fsecret.txt"):
        for endpoint in (
            f"/get-artifact?run_uuid={run_id}&path={path}",
            f"/ajax-api/2.0/mlflow/artifacts/list?run_id={run_id}&path={path}",
        ):
            status, body = _request(server["port"], "GET", endpoint)
            assert (status, "Invalid path") == (400, _message(body)), (endpoint, body)


def test_stop_server_kills_the_whole_process_group():
    """The mlflow CLI spawns uvicorn; stopping the server must take both down."""
    process = subprocess.Popen(
        ["sh", "-c", "sleep 60 & sleep 60"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    try:
        time.sleep(0.2)
        stop_server(process, timeout=5)
        assert process.returncode is not None
        assert _group_is_gone(process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
