"""Train one configuration inside one MLflow run: the function `rnnlab train` and sweep trials share.

It owns the run's life: open (or continue) it, record the config and environment, hand an
MLFlowLogger to `fit`, then record the outcome and close the run whatever happened, so no
run is ever left RUNNING.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import Callback

from rnnlab.config import RunConfig
from rnnlab.tracking import runs
from rnnlab.training.fit import FitResult, fit


@dataclass
class TrackedResult:
    run: runs.RunHandle
    fit: FitResult

    @property
    def outcome(self) -> str:
        return self.fit.outcome


def default_run_name(cfg: RunConfig) -> str:
    clip = (
        "noclip"
        if cfg.train.clip.mode == "none"
        else f"clip{cfg.train.clip.mode}{cfg.train.clip.threshold:g}"
    )
    return f"{cfg.task.name}-{cfg.model.name}-{cfg.model.init.recurrent}-{clip}"


def open_run(
    cfg: RunConfig,
    *,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra_params: Mapping[str, Any] | None = None,
) -> runs.RunHandle:
    handle = runs.start_run(
        cfg.tracking.uri,
        cfg.tracking.experiment,
        run_name or default_run_name(cfg),
        tags={
            "rnnlab.seed": str(cfg.train.seed),
            "rnnlab.task": cfg.task.name,
            "rnnlab.model": cfg.model.name,
            **(tags or {}),
        },
        parent_run_id=parent_run_id,
        artifact_location=cfg.tracking.artifact_location,
    )
    runs.log_config(handle, cfg.to_dict(), extra_params)
    return handle


def train_tracked(
    cfg: RunConfig,
    *,
    handle: runs.RunHandle | None = None,
    run_name: str | None = None,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
    extra_params: Mapping[str, Any] | None = None,
    extra_callbacks: Sequence[Callback] = (),
    checkpoint_dir: Path | None = None,
    resume_from: str | None = None,
    run_test: bool = True,
    progress: bool = False,
    close_run: bool = True,
) -> TrackedResult:
    from rnnlab.tracking.lightning_logger import BufferedMLFlowLogger

    if handle is None:
        handle = open_run(
            cfg,
            run_name=run_name,
            parent_run_id=parent_run_id,
            tags=tags,
            extra_params=extra_params,
        )
    logger = BufferedMLFlowLogger(
        experiment_name=cfg.tracking.experiment,
        tracking_uri=cfg.tracking.uri,
        run_id=handle.run_id,
        # A resumed run may train again epochs that an interrupted attempt already logged.
        skip_steps=runs.logged_steps(handle) if resume_from else None,
    )
    try:
        result = fit(
            cfg,
            mlflow_logger=logger,
            checkpoint_dir=checkpoint_dir,
            extra_callbacks=extra_callbacks,
            resume_from=resume_from,
            run_test=run_test,
            progress=progress,
        )
    except KeyboardInterrupt:
        if close_run:
            runs.end_run(handle, "stopped")
        raise
    except SystemExit as exc:
        # Ray Tune stops a trial's thread with sys.exit(0) (scheduler, budget, user); the
        # driver knows why and records the outcome.
        if exc.code not in (0, None) and close_run:
            runs.end_run(handle, "failed")
        elif close_run:
            runs.end_run(handle, "stopped")
        raise
    except BaseException as exc:
        runs.set_tags(handle, {"rnnlab.error": f"{type(exc).__name__}: {exc}"[:5000]})
        if close_run:
            runs.end_run(handle, "failed")
        raise
    record_result(handle, cfg, result)
    if close_run:
        runs.end_run(handle, result.outcome)
    if result.workdir is not None:
        result.workdir.cleanup()
        result.workdir = None
    return TrackedResult(run=handle, fit=result)


def record_by_length(handle: runs.RunHandle, cfg: RunConfig, result: FitResult) -> None:
    """Metric-vs-length as series (MLflow step = length), a JSON table and a PNG."""
    import tempfile

    from rnnlab.diagnostics.plots import run_title
    from rnnlab.training.length_generalisation import (
        METRIC_PREFIX,
        PLOT_FILE,
        TABLE_ARTIFACT,
        plot_by_length,
    )

    for length, row in result.by_length.items():
        runs.log_metrics(handle, {f"{METRIC_PREFIX}{k}": v for k, v in row.items()}, step=length)
    table = {"trained_at": result.native_length, "by_length": result.by_length}
    runs.log_text(handle, json.dumps(table, indent=2), TABLE_ARTIFACT)
    baselines = result.spec.baselines if result.spec is not None else {}
    with tempfile.TemporaryDirectory(prefix="rnnlab-length-") as tmp:
        png = plot_by_length(
            result.by_length,
            result.native_length or 0,
            run_title(cfg),
            Path(tmp) / PLOT_FILE,
            # A baseline that depends on the length (copy) would mislead on other lengths.
            baselines={k: v for k, v in baselines.items() if k in ("mse", "accuracy")},
        )
        if png is not None:
            runs.log_artifact_file(handle, png, "plots")


def record_result(handle: runs.RunHandle, cfg: RunConfig, result: FitResult) -> None:
    """Everything a run learned that is not a per-epoch metric: facts, baselines, checkpoints."""
    if result.data_facts:
        runs.log_params(handle, {f"data.{k}": v for k, v in result.data_facts.items()})
    if result.spec is not None and result.spec.baselines:
        runs.log_metrics(handle, {f"baseline/{k}": v for k, v in result.spec.baselines.items()})
    test = {k: v for k, v in result.metrics.items() if k.startswith("test/")}
    if test:
        runs.log_metrics(handle, test, step=result.epochs)
    if result.by_length:
        record_by_length(handle, cfg, result)
    if result.divergence is not None:
        div = result.divergence
        # issue 5: scalars (incl. diagnostics' blowup_layer, grad_norm.<layer>) as tags; the
        # per-layer gradient norms of the last steps as diagnostics/divergence.json.
        scalars = {k: v for k, v in div.items() if not isinstance(v, dict | list)}
        runs.set_tags(handle, {f"rnnlab.divergence.{k}": v for k, v in scalars.items()})
        if len(scalars) < len(div):
            runs.log_text(
                handle, json.dumps(div, indent=2, default=str), "diagnostics/divergence.json"
            )
    if cfg.tracking.log_checkpoints:
        for path in (result.best_checkpoint, result.last_checkpoint):
            if path:
                runs.log_artifact_file(handle, path, "checkpoints")
