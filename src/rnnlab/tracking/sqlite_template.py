"""New SQLite tracking stores start as a copy of an empty, already-migrated one.

MLflow builds a new SQLite store by running its whole chain of schema migrations, seconds
of CPU on every first run in a fresh directory (most of rnnlab's cold set-up time, see
docs/benchmarks.md). The empty store is the same every time for one MLflow version, so it is
built once per machine (cached beside the processed-data cache) and copied. The copy's
default experiment is pointed at the artifact root MLflow would have chosen itself.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

from rnnlab.tracking.sqlite_uri import SQLITE_PREFIX, sqlite_path


def template_dir() -> Path:
    from rnnlab.data.cache import cache_dir

    return cache_dir().parent / "mlflow-templates"


def _template_path() -> Path:
    import mlflow

    return template_dir() / f"empty-mlflow-{mlflow.__version__}.db"


def _build_template(path: Path) -> None:
    """Let MLflow create and migrate an empty store, then publish it atomically."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rnnlab-store-", dir=path.parent) as tmp:
        db = Path(tmp) / "empty.db"
        store = SqlAlchemyStore(f"{SQLITE_PREFIX}{db}", str(Path(tmp) / "mlruns"))
        store.engine.dispose()
        os.replace(db, path)


def ensure_sqlite_store(uri: str, artifact_root: str | None = None) -> bool:
    """If `uri` names a SQLite file that does not exist yet, create it from the template.

    `artifact_root`: the default artifact root of whatever will open the store (MLflow's
    client: ./mlruns of the working directory; a server serving artifacts:
    `mlflow-artifacts:/`). Returns whether a store was created. Safe when several processes
    race: the copy is linked into place only if nothing is there yet. Never raises.
    """
    target = sqlite_path(uri)
    if target is None:
        return False
    if target.exists() or not target.parent.is_dir():
        return False
    staged: Path | None = None
    try:
        template = _template_path()
        if not template.exists():
            _build_template(template)
        with tempfile.NamedTemporaryFile(
            dir=target.parent, prefix=".mlflow-", suffix=".db", delete=False
        ) as tmp:
            staged = Path(tmp.name)
        shutil.copyfile(template, staged)
        _point_default_experiment_at(staged, artifact_root)
        os.link(staged, target)  # FileExistsError: another process created it first
    except Exception:
        # Lost the race, no cache, no hard links, or a template MLflow will not build here:
        # MLflow opens or creates the store itself, as it always did, only more slowly.
        return False
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)
    return True


def _point_default_experiment_at(db: Path, artifact_root: str | None) -> None:
    """Experiment 0's artifact location as MLflow would have set it when creating the store."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.utils.uri import append_to_uri_path, resolve_uri_if_local

    root = artifact_root or resolve_uri_if_local(DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
    location = append_to_uri_path(root, "0")
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,)
        )
    conn.close()
