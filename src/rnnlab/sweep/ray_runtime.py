"""Starting or joining Ray: the one place that decides which network interface Ray uses.

An embedded Ray binds to loopback only — safer on a laptop, and the only network tests may
use. With Ray 2.60, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes `ray.init()` pick 127.0.0.1;
it must be set before `ray` is imported, and it must NOT be set when joining a multi-node
cluster (it makes `ray start --address` refuse one). Cluster nodes started for tests use
`--node-ip-address=127.0.0.1` instead (see tests and docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
# Tune's own progress tables and Train V2 banners would drown our compact progress lines.
QUIET_ENV = {
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_DEDUP_LOGS": "1",
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "RAY_USAGE_STATS_ENABLED": "0",
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


@contextlib.contextmanager
def ray_session(
    address: str | None, num_cpus: float | None = None, runtime_env: dict[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Join `address` or start an embedded loopback Ray; shut down only what we started."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    if address is None:
        use_loopback()
    import ray

    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(
        logging.ERROR
    )
    if ray.is_initialized():
        yield ray.cluster_resources()
        return
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
        ray.init(
            address=address,
            runtime_env=runtime_env,
            **{k: v for k, v in common.items() if k != "include_dashboard"},
        )
    try:
        yield ray.cluster_resources()
    finally:
        ray.shutdown()
