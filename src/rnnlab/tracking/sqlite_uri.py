"""What a `sqlite:///` tracking URI names on disk.

MLflow's SQLite URIs are SQLAlchemy's: three slashes then the path, so a relative path
(`sqlite:///mlflow.db`) depends on the working directory and an absolute one has four
slashes. Every command that checks, creates or serves a store reads them the same way here.
"""

from __future__ import annotations

from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI, as written (maybe relative); else None."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    return Path(uri[len(SQLITE_PREFIX) :])


def absolute_sqlite_uri(uri: str, base: Path) -> str:
    """`uri` with a relative SQLite path resolved against `base`; any other URI unchanged,
    so a Ray worker or a server started elsewhere opens the same file."""
    path = sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    return SQLITE_PREFIX + str((base / path).resolve())
