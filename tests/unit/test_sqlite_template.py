"""New SQLite stores are copies of a migrated empty one, and MLflow uses them as its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.tracking.sqlite_template import ensure_sqlite_store


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RNNLAB_CACHE_DIR", str(tmp_path / "cache" / "processed"))
    return tmp_path / "cache"


def test_a_new_store_is_created_once_and_mlflow_can_use_it(cache, tmp_path, monkeypatch) -> None:
    from mlflow.tracking import MlflowClient

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    assert ensure_sqlite_store(uri) is True
    assert ensure_sqlite_store(uri) is False  # it exists now: left alone
    assert list((cache / "mlflow-templates").glob("empty-mlflow-*.db"))

    client = MlflowClient(tracking_uri=uri)
    default = client.get_experiment("0")
    assert default.name == "Default"
    # Experiment 0 points where MLflow itself would have put it: ./mlruns of this folder.
    assert str(work / "mlruns" / "0") in default.artifact_location
    exp = client.create_experiment("rnnlab")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "loss", 0.5)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
    assert not [p for p in work.iterdir() if p.name.startswith(".mlflow-")]  # no staged copy left


def test_a_second_new_store_reuses_the_cached_template(cache, tmp_path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        assert ensure_sqlite_store(f"sqlite:///{tmp_path / name / 'mlflow.db'}")
    assert len(list((cache / "mlflow-templates").glob("*.db"))) == 1


def test_other_stores_and_missing_folders_are_left_to_mlflow(cache, tmp_path) -> None:
    assert ensure_sqlite_store("http://127.0.0.1:5000") is False
    assert ensure_sqlite_store(f"sqlite:///{tmp_path / 'nowhere' / 'mlflow.db'}") is False
    assert not (tmp_path / "nowhere").exists()


def test_a_store_for_an_artifact_serving_server_points_experiment_0_at_it(cache, tmp_path) -> None:
    import sqlite3

    db = tmp_path / "server.db"
    assert ensure_sqlite_store(f"sqlite:///{db}", artifact_root="mlflow-artifacts:/")
    with sqlite3.connect(db) as conn:
        (location,) = conn.execute(
            "SELECT artifact_location FROM experiments WHERE experiment_id = 0"
        ).fetchone()
    assert location == "mlflow-artifacts:/0"


def test_an_unusable_cache_leaves_the_store_to_mlflow_and_nothing_behind(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("RNNLAB_CACHE_DIR", str(blocker / "processed"))
    work = tmp_path / "work"
    work.mkdir()
    assert ensure_sqlite_store(f"sqlite:///{work / 'mlflow.db'}") is False
    assert list(work.iterdir()) == []
