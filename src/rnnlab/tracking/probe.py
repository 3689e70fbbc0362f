"""Fail fast on an unreachable tracking store.

MLflow's HTTP client retries for about four minutes before giving up; a user who typed
the wrong URI deserves one line within seconds, before any run or trial starts.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from rnnlab.config import ConfigError
from rnnlab.tracking.sqlite_uri import absolute_sqlite_uri, sqlite_path


def resolve_tracking_uri(uri: str, base: Path | None = None) -> str:
    """Make a relative SQLite/file URI absolute, so Ray workers write to the same store."""
    base = base or Path.cwd()
    if sqlite_path(uri) is not None:
        return absolute_sqlite_uri(uri, base)
    if "://" not in uri:
        return str((base / uri).resolve())
    return uri


def probe_tracking_uri(uri: str, timeout: float = 2.0) -> None:
    """Raise ConfigError (one line) if the store at `uri` cannot be used."""
    scheme = urlparse(uri).scheme
    if scheme in ("http", "https"):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                if resp.status >= 400:
                    raise ConfigError(
                        f"tracking.uri={uri}: server answered HTTP {resp.status} on /health"
                    )
        except urllib.error.HTTPError as exc:
            raise ConfigError(
                f"tracking.uri={uri}: server answered HTTP {exc.code} on /health; is it an MLflow server?"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConfigError(
                f"tracking.uri={uri}: MLflow tracking server unreachable ({reason}); start it "
                "(`rnnlab server`) or fix tracking.uri"
            ) from None
    elif (path := sqlite_path(uri)) is not None:
        if not path.parent.is_dir():
            raise ConfigError(f"tracking.uri={uri}: folder {path.parent} does not exist")
    elif scheme not in ("", "file", "sqlite", "postgresql", "mysql", "databricks"):
        raise ConfigError(
            f"tracking.uri={uri}: unsupported scheme '{scheme}'; use sqlite:///FILE or http://HOST:PORT"
        )


def probe_composed(raw: dict) -> None:
    """Probe the tracking store named in a composed (not yet validated) config.

    The one probe of `rnnlab train` and `rnnlab sweep`: it runs before validation imports
    the task modules, so an unreachable server is refused in seconds.
    """
    tracking = raw.get("tracking") or {}
    uri = tracking.get("uri")
    if isinstance(uri, str):
        try:
            timeout = float(tracking.get("probe_timeout", 2.0))
        except (TypeError, ValueError):
            timeout = 2.0
        probe_tracking_uri(uri, timeout)
