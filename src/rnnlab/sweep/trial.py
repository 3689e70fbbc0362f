"""The Ray Tune trainable: one sweep trial = the same tracked `fit` as `rnnlab train`.

This runs in a Ray worker. It receives plain dicts resolved by the driver (never Hydra),
continues its own MLflow child run across retries and resumes (the run id travels in the
trial's checkpoint), and reports each epoch's metrics with a checkpoint to Tune.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint

from rnnlab.sweep.plan import build_trial_config
from rnnlab.training.callback_hooks import skip_inherited_hooks
from rnnlab.training.checkpoint_io import copy_checkpoint
from rnnlab.training.model_checkpoint import BEST_FILE, run_model_checkpoint

if TYPE_CHECKING:
    from rnnlab.config import RunConfig
    from rnnlab.tracking.runs import RunHandle

META_FILE = "rnnlab_trial.json"
CKPT_FILE = "trial.ckpt"
# Tune and Optuna see this value for a diverged trial: the worst possible, so the sampler
# learns to avoid the region (a FAILED Optuna trial would be ignored and re-sampled).
DIVERGED_PENALTY = 1e30
# How long a trial waits for the sweep's tracking server to answer (it may still be booting).
SERVER_WAIT_S = 180.0


@dataclass(frozen=True)
class TrialPayload:
    """What every trial needs from the driver; plain data, shipped once via with_parameters."""

    bases: dict[str, dict[str, Any]]
    sweep_name: str
    parent_run_id: str
    experiment_id: str
    tracking_uri: str
    metric: str
    mode: str
    role: str = "search"  # search | final
    # Wall-clock deadline (time.time()) of a sweep's time budget: trials stop themselves
    # there, cleanly, instead of being killed by Tune (which waits up to 10 s per actor).
    deadline: float | None = None
    # Test every search trial that completes (sweep.test_trials): comparisons such as
    # clipped vs unclipped report each arm's test metric, not only the winner's.
    test: bool = False
    # Epochs (1-based) after which the scheduler may stop a trial (ASHA's rungs): the
    # diagnostic plots are drawn before those reports, so pruned trials keep theirs.
    decision_epochs: tuple[int, ...] = ()


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def penalty(mode: str) -> float:
    return DIVERGED_PENALTY if mode == "min" else -DIVERGED_PENALTY


class TuneReporter(Checkpoint):
    """Report each epoch's metrics to Tune with a checkpoint, so retries and resumes continue.

    A `Checkpoint` callback so that Lightning runs it after ModelCheckpoint (checkpoint
    callbacks go last, in order): the Tune checkpoint then holds this epoch's best-model
    bookkeeping and the best file itself, which a retry in a new folder needs to keep testing
    and logging the trial's real best epoch (training/model_checkpoint.py).
    """

    def __init__(self, payload: TrialPayload, run_id: str) -> None:
        self.payload = payload
        self.run_id = run_id
        self.best: float | None = None

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        return value < self.best if self.payload.mode == "min" else value > self.best

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from ray import tune

        metrics = dict(getattr(pl_module, "epoch_metrics", {}) or {})
        if self.payload.metric not in metrics:
            return
        value = metrics[self.payload.metric]
        if math.isfinite(value) and self._improves(value):
            self.best = value
        metrics["rnnlab_run_id"] = self.run_id
        metrics["rnnlab_pid"] = os.getpid()
        metrics["rnnlab_node_id"] = _node_id()
        if trainer.current_epoch + 1 in self.payload.decision_epochs:
            _snapshot_plots(trainer, pl_module)
        # Metrics reach MLflow before the checkpoint that a retry would resume from.
        for lg in trainer.loggers:
            if hasattr(lg, "flush"):
                lg.flush()
        with tempfile.TemporaryDirectory(prefix="rnnlab-tune-") as tmp:
            write_trial_checkpoint(trainer, Path(tmp), {"run_id": self.run_id, "best": self.best})
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))


def write_trial_checkpoint(trainer: pl.Trainer, folder: Path, meta: dict[str, Any]) -> None:
    """What a retry or a resume continues from: the trainer's state, the best checkpoint so
    far, and `meta` (with where that best checkpoint is, under "best_checkpoint")."""
    trainer.save_checkpoint(folder / CKPT_FILE)
    meta = dict(meta, best_checkpoint=_best_into(trainer, folder))
    (folder / META_FILE).write_text(json.dumps(meta))


def _best_into(trainer: pl.Trainer, folder: Path) -> str | None:
    """Put the run's best checkpoint in `folder`. Returns "trial" when the trial checkpoint
    itself is the best one (this epoch scored the best so far: no second copy), "file" when
    it is BEST_FILE there, None when the run keeps no best checkpoint."""
    best = run_model_checkpoint(trainer)  # keeping only last.ckpt: no best_model_path
    if best is None or not best.best_model_path or best.best_model_score is None:
        return None
    # This epoch's own value: callback_metrics still hold the last validation's after an
    # epoch without one, when this epoch's state is not that validation's. Compared at the
    # score's precision: callback_metrics hold float32 tensors of these Python floats.
    metrics = getattr(trainer.lightning_module, "epoch_metrics", None) or {}
    fresh = metrics.get("epoch") == trainer.current_epoch
    now = metrics.get(best.monitor) if fresh and best.monitor else None
    score = best.best_model_score
    if now is not None and bool(torch.tensor(float(now), dtype=score.dtype) == score.cpu()):
        return "trial"
    copied = copy_checkpoint(
        trainer.strategy.checkpoint_io, best.best_model_path, folder / BEST_FILE
    )
    return "file" if copied else None


def _snapshot_plots(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
    from rnnlab.diagnostics.plots import DiagnosticPlots

    for cb in trainer.callbacks:
        if isinstance(cb, DiagnosticPlots):
            cb.snapshot(trainer, pl_module)


def asha_rungs(grace_period: int, reduction_factor: float, max_t: int) -> tuple[int, ...]:
    """The training iterations at which Ray's ASHAScheduler (one bracket) decides.

    Ray's formula: rungs at grace_period * reduction_factor**k for
    k < int(log(max_t / grace_period) / log(reduction_factor) + 1).
    """
    if grace_period >= max_t:
        return (grace_period,)
    count = int(math.log(max_t / grace_period) / math.log(reduction_factor) + 1)
    return tuple(int(grace_period * reduction_factor**k) for k in range(count))


def restore_trial_checkpoint(
    folder: Path, workdir: Path, checkpoint_dir: Path
) -> tuple[str | None, str | None, float | None]:
    """(run_id, local checkpoint path, best metric so far) from a trial checkpoint's folder.

    The best checkpoint so far goes to `checkpoint_dir` under the name ModelCheckpoint gives
    it, where the resumed run's ModelCheckpoint finds it and keeps its score."""
    meta_path = folder / META_FILE
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    ckpt = folder / CKPT_FILE
    local = None
    if ckpt.exists():
        local = workdir / CKPT_FILE
        shutil.copyfile(ckpt, local)
    source = {"trial": ckpt, "file": folder / BEST_FILE}.get(meta.get("best_checkpoint"))
    if source is not None and source.exists():
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, checkpoint_dir / BEST_FILE)
    return meta.get("run_id"), (str(local) if local else None), meta.get("best")


def _restore(
    checkpoint: Any, workdir: Path, checkpoint_dir: Path
) -> tuple[str | None, str | None, float | None]:
    """restore_trial_checkpoint from a Tune checkpoint, or nothing for a first attempt."""
    if checkpoint is None:
        return None, None, None
    with checkpoint.as_directory() as d:
        return restore_trial_checkpoint(Path(d), workdir, checkpoint_dir)


def run_trial(params: dict[str, Any], payload: TrialPayload) -> None:
    """Tune's function trainable (bound to the payload with tune.with_parameters).

    A fresh worker imports Lightning and MLflow here; the collector waits until training
    starts, as in the `rnnlab` command (rnnlab/collector.py)."""
    from rnnlab.collector import paused_for_startup

    with paused_for_startup():
        _run_trial(params, payload)


def open_trial_run(
    payload: TrialPayload,
    cfg: RunConfig,
    trial_id: str,
    sampled: dict[str, Any],
    run_id: str | None = None,
) -> RunHandle:
    """The trial's child run: `run_id` (from its Tune checkpoint) or the run an earlier
    attempt of this trial opened, reopened; else a new one.

    An attempt killed between creating its run and logging the config leaves a run with the
    trial's tags and no params, which the retry finds by its trial id. So a reopened run gets
    the config again; params it already holds are skipped (`runs.log_params`).
    """
    from rnnlab.sweep.tracking import find_trial_run, reopen_run
    from rnnlab.tracking import runs
    from rnnlab.training.tracked import open_run

    extra_params = {f"sampled.{k}": v for k, v in sampled.items()}
    run_id = run_id or find_trial_run(
        payload.tracking_uri, payload.experiment_id, payload.sweep_name, trial_id
    )
    if run_id is None:
        return open_run(
            cfg,
            run_name=f"{payload.sweep_name}/{trial_id}"
            if payload.role == "search"
            else f"{payload.sweep_name}/final-seed{cfg.train.seed}",
            parent_run_id=payload.parent_run_id,
            tags={
                "rnnlab.sweep": payload.sweep_name,
                "rnnlab.trial_id": trial_id,
                "rnnlab.role": payload.role,
            },
            extra_params=extra_params,
        )
    handle = runs.RunHandle(payload.tracking_uri, run_id, payload.experiment_id)
    reopen_run(handle)
    runs.log_config(handle, cfg.to_dict(), extra_params)
    return handle


def _run_trial(params: dict[str, Any], payload: TrialPayload) -> None:
    from ray import tune

    from rnnlab.tracking import runs
    from rnnlab.training.tracked import train_tracked

    trial_id = tune.get_context().get_trial_id()
    cfg = build_trial_config(payload.bases, params)
    cfg = cfg.model_copy(
        update={"tracking": cfg.tracking.model_copy(update={"uri": payload.tracking_uri})}
    )
    sampled = {k: v for k, v in params.items() if not k.startswith("_")}
    if payload.deadline is not None:
        left = payload.deadline - time.time()
        if left < 1.0:
            tune.report(
                {
                    payload.metric: penalty(payload.mode),
                    "rnnlab_outcome": "budget",
                    "rnnlab_done": True,
                }
            )
            return
        budget = min(cfg.train.time_budget or left, left)
        cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={"time_budget": budget})})

    if payload.tracking_uri.startswith(("http://", "https://")):
        # The sweep's own server may still be booting: trials start beside it (runner.run_sweep).
        from rnnlab.tracking.server import wait_until_healthy

        wait_until_healthy(payload.tracking_uri, timeout=SERVER_WAIT_S)
    workdir = Path(tempfile.mkdtemp(prefix="rnnlab-trial-"))
    try:
        checkpoint_dir = workdir / "checkpoints"
        run_id, resume_from, best = _restore(tune.get_checkpoint(), workdir, checkpoint_dir)
        handle = open_trial_run(payload, cfg, trial_id, sampled, run_id)
        runs.set_tags(handle, {"rnnlab.node_id": _node_id()})  # a retry records where it finished
        reporter = skip_inherited_hooks(TuneReporter(payload, handle.run_id))
        reporter.best = best
        result = train_tracked(
            cfg,
            handle=handle,
            extra_callbacks=[reporter],
            checkpoint_dir=checkpoint_dir,
            resume_from=resume_from,
            run_test=payload.role == "final" or payload.test,
            close_run=False,
        )
        fit = result.fit
        final: dict[str, Any] = {
            k: v for k, v in fit.metrics.items() if k.startswith(("val/", "train/", "test/"))
        }
        if fit.outcome == "diverged":
            final[payload.metric] = penalty(payload.mode)
        elif reporter.best is not None:
            final[payload.metric] = reporter.best  # the sampler learns from the best epoch
        elif payload.metric not in final:
            final[payload.metric] = penalty(payload.mode)
        final.update(
            {"rnnlab_outcome": fit.outcome, "rnnlab_done": True, "rnnlab_run_id": handle.run_id}
        )
        tune.report(final)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
