"""Starting or joining Ray: the one place that decides which network interface Ray uses.

An embedded Ray binds to loopback only — safer on a laptop, and the only network tests may
use. With Ray 2.60, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes `ray.init()` pick 127.0.0.1;
it must be set before `ray` is imported. Without it, Ray on Linux rewrites 127.0.0.1 — in
`ray.init(address=...)`, `ray start --address` and `--node-ip-address` — to the machine's
routable IP (`services.resolve_ip_for_localhost`), so a driver joining a cluster that listens on
loopback would wait forever on an address nothing listens on. A driver joining a loopback
cluster therefore sets it too; `ray start --address` refuses to add a node while it is set, so
a multi-node cluster on loopback is built with `ray.cluster_utils.Cluster` (tests do).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

from rnnlab.config import ConfigError

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Tune's own progress tables and Train V2 banners would drown our compact progress lines.
QUIET_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
    # When ASHA stops a trial, Tune waits only 2 s for its thread before reusing the worker;
    # a pruned trial's thread exits at its next report (an epoch), so reuse failed, the next
    # trial was aborted without reaching the searcher, and the sweep hung (docs/benchmarks.md).
    "TUNE_FUNCTION_THREAD_TIMEOUT_S": "60",
    # Ray runs workers at niceness 15: trials starve behind any other load on a workstation.
    "RAY_worker_niceness": "0",
    "PYTHONWARNINGS": "ignore",
}


def use_loopback() -> None:
    """Call before the first `import ray` of a process that embeds Ray."""
    if "ray" in sys.modules and os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER") != "0":
        # ray_constants read the variable at import; patch the constant too.
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    os.environ.update(LOOPBACK_ENV)


def cluster_address(configured: str | None) -> str | None:
    """The cluster to join: hardware.address, else RAY_ADDRESS, else None (embedded)."""
    return configured or os.environ.get("RAY_ADDRESS") or None


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of `host:port` or `ray://host:port`; None for `auto` or no port."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _auto_address() -> str | None:
    """The address `auto` means: the cluster `ray start` last recorded on this machine."""
    from ray._private.services import get_ray_address_from_environment

    try:
        return get_ray_address_from_environment("auto", None)
    except Exception:  # no cluster recorded: let ray.init say so
        return None


def is_loopback_address(address: str) -> bool:
    found = _host_port(address)
    if found is None:
        return False
    host = found[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_cluster_reachable(address: str, timeout: float = 2.0) -> None:
    """One line within `timeout` s if nothing listens at `address` (ray.init retries forever)."""
    found = _host_port(address)
    if found is None:
        return
    try:
        with socket.create_connection(found, timeout=timeout):
            return
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(
            f"no Ray cluster answers at {address} ({reason}); start its head with "
            "`ray start --head`, or fix hardware.address / $RAY_ADDRESS"
        ) from None


def prepare_to_join(address: str) -> None:
    """Before `ray.init(address=...)`: keep a loopback address on loopback, fail fast if dead."""
    if address == "auto":
        address = _auto_address() or address
    if is_loopback_address(address):
        use_loopback()
    check_cluster_reachable(address)


@contextlib.contextmanager
def ray_session(
    address: str | None, num_cpus: float | None = None, runtime_env: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Join `address` or start an embedded loopback Ray; shut down only what we started."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if address is None or is_loopback_address(address):
        use_loopback()  # before the import, which reads the switch
    import ray

    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    if ray.is_initialized():
        yield ray.cluster_resources()
        return
    if address is not None:
        prepare_to_join(address)
    common: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.WARNING,
        "configure_logging": True,
    }
    if address is None:
        ray.init(
            num_cpus=int(num_cpus) if num_cpus else None, _node_ip_address="127.0.0.1", **common
        )
    else:
        # Cluster workers do not inherit this driver's environment: pass Tune's thread timeout on.
        env = dict(runtime_env or {})
        env_vars = {"TUNE_FUNCTION_THREAD_TIMEOUT_S": os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"]}
        env["env_vars"] = {**env_vars, **env.get("env_vars", {})}
        ray.init(
            address=address,
            runtime_env=env,
            **{k: v for k, v in common.items() if k != "include_dashboard"},
        )
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()
