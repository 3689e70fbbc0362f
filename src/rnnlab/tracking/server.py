"""Run a shared MLflow tracking server with a database backend and proxied artifacts.

SQLite tolerates one writer; a sweep has many. A tracking server puts every process
(driver, Ray workers, DDP rank 0) behind one HTTP endpoint that owns the database.
Secure by default: bound to loopback, `--allowed-hosts` always set (DNS rebinding),
and database passwords travel in the environment, never on a command line.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from rnnlab.config import ConfigError
from rnnlab.tracking.sqlite_uri import SQLITE_PREFIX, absolute_sqlite_uri

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
# MLflow's own variable: `mlflow server` reads it too, so a URI with a password never
# has to appear in argv (visible in `ps`, shell history and our logs).
BACKEND_URI_ENV = "MLFLOW_BACKEND_STORE_URI"
# Defaults for the server process that the user's environment may still override:
# no telemetry from a lab server, and no job-executor subprocess (GenAI jobs we don't use).
_SERVER_ENV_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
}
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def default_backend_uri(cwd: Path | None = None) -> str:
    """`sqlite:///<cwd>/mlflow.db`: the same file `rnnlab train` writes to by default."""
    return SQLITE_PREFIX + str(((cwd or Path.cwd()) / "mlflow.db").resolve())


def redact_uri(uri: str) -> str:
    """The URI with any password replaced by ***, safe to print or log."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _has_password(uri: str) -> bool:
    try:
        return urlsplit(uri).password is not None
    except ValueError:
        return False


def resolve_backend_uri(
    given: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Pick the backend store: an explicit URI, else $MLFLOW_BACKEND_STORE_URI, else SQLite in cwd.

    `given` comes from a command line, so it must not carry a password; a URI with one
    belongs in $MLFLOW_BACKEND_STORE_URI (or use the driver's own variable, e.g. PGPASSWORD).
    """
    env = os.environ if env is None else env
    if given:
        if _has_password(given):
            raise ConfigError(
                f"backend URI {redact_uri(given)} contains a password; command lines are "
                f"logged, so put the URI in ${BACKEND_URI_ENV} or the password in PGPASSWORD"
            )
        uri = given
    else:
        uri = env.get(BACKEND_URI_ENV) or default_backend_uri(cwd)
    if "://" not in uri:
        raise ConfigError(
            f"backend URI {redact_uri(uri)!r} is not a SQLAlchemy URI; use e.g. "
            "sqlite:///ABS/PATH/mlflow.db or postgresql://USER@HOST:5432/DB"
        )
    return absolute_sqlite_uri(uri, cwd or Path.cwd())


def is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def loopback_hosts(port: int) -> list[str]:
    """Loopback Host headers, with and without the port.

    Always safe to allow: a DNS-rebinding page makes the browser send the attacker's
    domain as Host, never `localhost`.
    """
    names = ["127.0.0.1", "localhost", "[::1]"]
    return [*names, *(f"{name}:{port}" for name in names)]


def _default_workers(backend_uri: str) -> int:
    # SQLite takes one writer at a time: several server processes only add lock contention.
    return 1 if backend_uri.startswith("sqlite:") else 4


def build_server_command(
    backend_uri: str,
    artifacts_dir: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_hosts: list[str] | str | None = None,
    workers: int | None = None,
) -> list[str]:
    """The `mlflow server` argv: database backend, proxied artifact root, host checks on.

    A backend URI with a password is left out of argv; pass `server_environment(...)` as
    the process environment and MLflow reads it from $MLFLOW_BACKEND_STORE_URI.
    `artifacts_dir` may be a local folder or an object-store URI (s3://…, gs://…).
    """
    if not 0 < int(port) < 65536:
        raise ConfigError(f"port={port}: must be between 1 and 65535")
    if isinstance(allowed_hosts, str):
        allowed_hosts = [h.strip() for h in allowed_hosts.split(",") if h.strip()]
    if "*" in (allowed_hosts or []):
        raise ConfigError(
            "allowed_hosts='*' turns off MLflow's DNS-rebinding protection; list the host names"
        )
    if not allowed_hosts and not is_loopback(host):
        raise ConfigError(
            f"host={host} exposes the tracking server beyond this machine; list the names "
            "clients use to reach it in allowed_hosts (e.g. mlflow.lab.internal:5000)"
        )
    hosts = list(dict.fromkeys([*(allowed_hosts or []), *loopback_hosts(port)]))
    workers = _default_workers(backend_uri) if workers is None else workers
    if workers < 1:
        raise ConfigError(f"workers={workers}: must be at least 1")
    destination = str(artifacts_dir)
    if "://" not in destination:
        destination = str(Path(destination).resolve())
    command = [sys.executable, "-m", "mlflow", "server"]
    if not _has_password(backend_uri):
        command += ["--backend-store-uri", backend_uri]
    command += [
        "--serve-artifacts",
        "--artifacts-destination",
        destination,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--allowed-hosts",
        ",".join(hosts),
    ]
    return command


def server_environment(backend_uri: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for the server process: ours plus the backend URI and quiet defaults."""
    env = dict(os.environ if base is None else base)
    for key, value in _SERVER_ENV_DEFAULTS.items():
        env.setdefault(key, value)
    env[BACKEND_URI_ENV] = backend_uri
    return env


def server_uri(host: str, port: int) -> str:
    """The URL clients use; a wildcard bind is reached on loopback from this machine."""
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def check_port_free(host: str, port: int) -> None:
    """Refuse a busy port: a health check would otherwise succeed against someone else's server."""
    bind_host = "127.0.0.1" if host in ("0.0.0.0", "") else host.strip("[]")
    family = socket.AF_INET6 if ":" in bind_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((bind_host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is another server running "
                "there? pick another port"
            ) from None


def _is_healthy(uri: str, timeout: float) -> bool:
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_until_healthy(
    uri: str,
    timeout: float = 60.0,
    process: subprocess.Popen | None = None,
    interval: float = 0.2,
) -> None:
    """Poll `uri`/health until it answers 200; ConfigError on timeout or if `process` exits."""
    deadline = time.monotonic() + timeout
    while True:
        if _is_healthy(uri, timeout=min(2.0, max(interval, 0.5))):
            return
        if process is not None and process.poll() is not None:
            raise ConfigError(
                f"MLflow server for {uri} exited with code {process.returncode} before it "
                "became healthy"
            )
        if time.monotonic() >= deadline:
            raise ConfigError(f"MLflow server at {uri} not healthy after {timeout:g} s")
        time.sleep(interval)


def stop_server(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """Stop a server from `start_server` and every process it spawned (its process group)."""
    if process.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # The mlflow CLI can exit before its uvicorn child does; sweep the group once more.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _last_line(path: Path | None) -> str:
    if path is None or not path.exists():
        return ""
    lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def start_server(
    backend_uri: str,
    artifacts_dir: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_hosts: list[str] | str | None = None,
    workers: int | None = None,
    log_path: str | Path | None = None,
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen:
    """Start `mlflow server` in its own process group and return once /health answers.

    Stop it with `stop_server(process)`. If it does not become healthy the process group is
    killed before the ConfigError is raised, so nothing is left running.
    """
    command = build_server_command(backend_uri, artifacts_dir, host, port, allowed_hosts, workers)
    check_port_free(host, port)
    log_file = Path(log_path) if log_path else None
    if log_file:
        log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file or os.devnull, "ab") as out:
        process = subprocess.Popen(
            command,
            env=server_environment(backend_uri, env),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_healthy(server_uri(host, port), timeout=timeout, process=process)
    except BaseException as exc:
        stop_server(process)
        if isinstance(exc, ConfigError) and (last := _last_line(log_file)):
            raise ConfigError(f"{exc}: {last}") from None
        raise
    return process


@contextlib.contextmanager
def running_server(
    backend_uri: str, artifacts_dir: str | Path, **kwargs
) -> Iterator[tuple[subprocess.Popen, str]]:
    """`with running_server(...) as (process, uri):` — stopped on exit, whatever happens."""
    process = start_server(backend_uri, artifacts_dir, **kwargs)
    try:
        yield (
            process,
            server_uri(kwargs.get("host", DEFAULT_HOST), kwargs.get("port", DEFAULT_PORT)),
        )
    finally:
        stop_server(process)


def serve(
    backend_uri: str,
    artifacts_dir: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    allowed_hosts: list[str] | str | None = None,
    workers: int | None = None,
    timeout: float = 120.0,
) -> int:
    """Run the server in the foreground until Ctrl-C or SIGTERM; return its exit code."""
    command = build_server_command(backend_uri, artifacts_dir, host, port, allowed_hosts, workers)
    check_port_free(host, port)
    uri = server_uri(host, port)
    hosts = command[command.index("--allowed-hosts") + 1]
    print(
        f"MLflow server: backend {redact_uri(backend_uri)}, artifacts "
        f"{command[command.index('--artifacts-destination') + 1]}, allowed hosts {hosts}",
        flush=True,
    )
    # Same process group as us: Ctrl-C in the terminal reaches mlflow and uvicorn directly.
    process = subprocess.Popen(command, env=server_environment(backend_uri))

    def _forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, _forward)
    try:
        try:
            wait_until_healthy(uri, timeout=timeout, process=process)
            print(f"MLflow server ready: tracking.uri={uri} (Ctrl-C to stop)", flush=True)
        except ConfigError:
            if process.poll() is None:
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=15)
            raise
        return process.wait()
    except KeyboardInterrupt:
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
