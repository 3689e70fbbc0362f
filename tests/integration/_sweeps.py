"""Look-ups the sweep test modules share: a sweep folder's MLflow store and a sweep's runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def store_client(folder: Path) -> Any:
    """An MlflowClient on `folder/mlflow.db`, the store `rnnlab sweep` uses by default."""
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")


def sweep_runs(client: Any, experiment_id: str, sweep: str, role: str = "search") -> list[Any]:
    """The runs of one sweep with one role: `search` (trials), `final` (seeds), `sweep`, `lost`."""
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.`rnnlab.sweep` = '{sweep}' and tags.`rnnlab.role` = '{role}'",
    )
