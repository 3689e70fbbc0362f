"""A processed-data cache on local disk, keyed by a hash of what the data was built from.

Tokenising the Penn Treebank or a tweet corpus takes seconds; a sweep runs the same task in
many trials at once on one machine. The first process to need an entry builds it while
holding a file lock, writes it to a temporary file and renames it into place (atomic on
POSIX), so a reader never sees half a file and parallel trials build each entry once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch

CACHE_DIR_ENV = "RNNLAB_CACHE_DIR"
# Bump when a task's processing changes, so stale entries are never read.
CACHE_FORMAT = 1

Payload = dict[str, Any]  # tensors, str, int, float and lists/dicts of them


def cache_dir() -> Path:
    """$RNNLAB_CACHE_DIR, else ~/.cache/rnnlab/processed."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnlab" / "processed"


def cache_key(kind: str, key: Mapping[str, Any]) -> str:
    """A stable hex digest of (kind, key, format): the same config gives the same entry."""
    text = json.dumps(
        {"kind": kind, "format": CACHE_FORMAT, "key": key}, sort_keys=True, default=str
    )
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def entry_path(kind: str, key: Mapping[str, Any]) -> Path:
    return cache_dir() / f"{kind}-{cache_key(kind, key)}.pt"


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: the atomic rename alone keeps readers safe
        yield
        return
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _read(path: Path) -> Payload | None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        return None
    except Exception:  # a truncated or foreign file: rebuild rather than fail the run
        return None
    return payload if isinstance(payload, dict) else None


def write_atomic(path: Path, payload: Payload) -> None:
    """Write to a temporary file in the same folder, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def load_or_build(
    kind: str, key: Mapping[str, Any], build: Callable[[], Payload], enabled: bool = True
) -> Payload:
    """The cached payload for (kind, key), building and storing it on a miss.

    `key` must name everything the payload depends on (the task config's data fields, the
    source file's fingerprint); `build` must return tensors and plain Python values only
    (they are read back with `weights_only=True`).
    """
    if not enabled:
        return build()
    path = entry_path(kind, key)
    payload = _read(path)
    if payload is not None:
        return payload
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home, say: run uncached
        return build()
    with _locked(path.with_suffix(".lock")):
        payload = _read(path)  # another process may have built it while we waited
        if payload is None:
            payload = build()
            # A full or read-only disk costs speed, not the run.
            with contextlib.suppress(OSError):
                write_atomic(path, payload)
    return payload
