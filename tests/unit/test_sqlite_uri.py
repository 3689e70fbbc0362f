"""Reading `sqlite:///` tracking URIs: relative and absolute paths, other stores untouched."""

from __future__ import annotations

from pathlib import Path

from rnnlab.tracking.sqlite_uri import absolute_sqlite_uri, sqlite_path


def test_the_path_of_a_sqlite_uri_is_what_follows_three_slashes() -> None:
    assert sqlite_path("sqlite:///mlflow.db") == Path("mlflow.db")
    assert sqlite_path("sqlite:////abs/runs/mlflow.db") == Path("/abs/runs/mlflow.db")
    assert sqlite_path("http://127.0.0.1:5000") is None
    assert sqlite_path("sqlite://") is None  # in memory: no file


def test_a_relative_sqlite_path_is_resolved_against_the_base_and_others_are_kept(
    tmp_path: Path,
) -> None:
    assert absolute_sqlite_uri("sqlite:///sub/mlflow.db", tmp_path) == (
        f"sqlite:///{tmp_path.resolve()}/sub/mlflow.db"
    )
    assert absolute_sqlite_uri("sqlite:////abs/mlflow.db", tmp_path) == "sqlite:////abs/mlflow.db"
    # An absolute path is kept as given, not resolved: a store named through a link stays so.
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    linked = f"sqlite:///{tmp_path / 'link' / 'mlflow.db'}"
    assert absolute_sqlite_uri(linked, tmp_path / "elsewhere") == linked
    for uri in ("http://127.0.0.1:5000", "postgresql://u@h:5432/db"):
        assert absolute_sqlite_uri(uri, tmp_path) == uri
