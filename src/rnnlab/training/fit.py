"""`fit(cfg)`: the one path from a validated config to a trained model.

`rnnlab train` and every sweep trial call it unchanged. It never imports Ray, so it runs
in DDP ranks and on GPU machines without Ray installed; callers add what they need
(a sweep's reporter, diagnostics) as Lightning callbacks.
"""

from __future__ import annotations

import logging
import math
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, Checkpoint, EarlyStopping, ModelCheckpoint, Timer

from rnnlab.collector import long_lived_objects_frozen
from rnnlab.config import RunConfig
from rnnlab.data.base import TaskSpec
from rnnlab.diagnostics import build_diagnostics  # issue 5: gradient flow, clipping, spectra
from rnnlab.diagnostics.divergence import divergence_detail  # issue 5
from rnnlab.models import build_model
from rnnlab.registry import task_class
from rnnlab.training.callback_hooks import skip_inherited_hooks
from rnnlab.training.checkpoint_io import WriteAtTeardownCheckpointIO
from rnnlab.training.data_hooks import ResolveDataHooksOnce
from rnnlab.training.data_logging import data_callbacks  # issue 4: padding share, vocab files
from rnnlab.training.length_generalisation import evaluate_lengths, supports_lengths
from rnnlab.training.lm_module import LanguageModelModule  # issue 4: truncated BPTT
from rnnlab.training.model_checkpoint import (
    BEST_CHECKPOINT,
    BEST_FILE,
    RelocatableModelCheckpoint,
    run_model_checkpoint,
)
from rnnlab.training.module import DivergedError, SequenceModule


@dataclass
class FitResult:
    outcome: str  # completed | diverged | budget
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    best_checkpoint: str | None = None
    last_checkpoint: str | None = None
    divergence: dict[str, Any] | None = None
    epochs: int = 0  # epochs validated; the step at which test metrics are logged
    spec: TaskSpec | None = None
    data_facts: dict[str, Any] = field(default_factory=dict)
    # issue 4: test metrics per sequence length ({length: {metric: value}}), task.eval_lengths.
    by_length: dict[int, dict[str, float]] = field(default_factory=dict)
    native_length: int | None = None
    # Holds the temporary checkpoint folder open until the caller has logged what it needs.
    workdir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)


def quiet_lightning() -> None:
    """Lightning's per-run banners and data-loader hints are noise for in-memory data."""
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings(
        "ignore", message=".*number of training batches.*smaller than the logging interval.*"
    )
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*is an invalid metric name.*")
    # SequenceModule keeps lengths on the CPU for any datamodule; that is the point, not a slip.
    warnings.filterwarnings(
        "ignore", message=".*overridden `transfer_batch_to_device` in `LightningModule`.*"
    )
    # Our epoch metrics are torchmetrics states, which sync across ranks on compute().
    warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed.*")


def configure_torch(cfg: RunConfig) -> None:
    # Denormal floats make tanh-RNN steps at T=200 about 4x slower on CPU (DESIGN.md).
    torch.set_flush_denormal(True)
    if cfg.hardware.threads:
        torch.set_num_threads(cfg.hardware.threads)


def build_datamodule(cfg: RunConfig):
    cls = task_class(cfg.task.model_dump(by_alias=True))
    return cls(cfg.task, batch_size=cfg.train.batch_size, seed=cfg.train.seed)


def monitor_of(cfg: RunConfig, spec: TaskSpec) -> tuple[str, str]:
    """The quantity early stopping and checkpointing follow, and whether lower is better."""
    es = cfg.train.early_stopping
    monitor = es.monitor or spec.monitor
    if es.mode:
        return monitor, es.mode
    if monitor == spec.monitor:
        return monitor, spec.monitor_mode
    return monitor, "max" if any(k in monitor for k in ("accuracy", "f1")) else "min"


def build_callbacks(cfg: RunConfig, spec: TaskSpec, checkpoint_dir: Path) -> list[Callback]:
    monitor, mode = monitor_of(cfg, spec)
    callbacks: list[Callback] = []
    keep = cfg.train.keep_checkpoints
    if keep != "none":
        callbacks.append(
            RelocatableModelCheckpoint(
                dirpath=checkpoint_dir,
                filename=BEST_CHECKPOINT,
                monitor=monitor,
                mode=mode,
                save_top_k=1 if keep in ("best_and_last", "best") else 0,
                # Lightning writes last.ckpt only when it saved a checkpoint at that step
                # (or links it); with a best one kept, a link saves the second write per epoch.
                save_last="link" if keep == "best_and_last" else keep == "last",
                enable_version_counter=False,
            )
        )
    if cfg.train.early_stopping.enabled:
        callbacks.append(
            EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=cfg.train.early_stopping.patience,
                min_delta=cfg.train.early_stopping.min_delta,
                check_finite=True,
            )
        )
    # issue 5: diagnostics callbacks, only those cfg.diagnostics switches on (none by default).
    callbacks.extend(build_diagnostics(cfg))
    return callbacks


def build_trainer(
    cfg: RunConfig,
    callbacks: Sequence[Callback],
    logger: Any,
    root_dir: Path,
    progress: bool,
) -> pl.Trainer:
    hw = cfg.hardware
    lb = cfg.train.limit_batches
    strategy: Any = hw.strategy
    if strategy == "auto" and _data_parallel(hw.accelerator, hw.devices):
        # Lightning's "auto" picks plain `ddp` for several devices (see below).
        strategy = "ddp_spawn"
    if strategy == "ddp_spawn":
        # Lightning's plain `ddp` re-executes sys.argv per rank, which breaks under our CLI,
        # pytest and Ray workers; spawn keeps every rank inside this process tree.
        from pytorch_lightning.strategies import DDPStrategy

        strategy = DDPStrategy(
            start_method="spawn", process_group_backend="gloo" if hw.accelerator == "cpu" else None
        )
    elif strategy == "ray_ddp":
        raise ValueError("hardware.strategy=ray_ddp runs only inside a sweep (Ray Train)")
    precision = "32-true" if hw.precision in ("32", "32-true") else hw.precision
    return pl.Trainer(
        plugins=checkpoint_plugins(cfg, root_dir),
        accelerator=hw.accelerator,
        devices=hw.devices,
        strategy=strategy,
        precision=precision,
        max_epochs=cfg.train.max_epochs,
        max_time=timedelta(seconds=cfg.train.time_budget) if cfg.train.time_budget else None,
        limit_train_batches=lb,
        limit_val_batches=lb,
        limit_test_batches=lb,
        logger=logger if logger is not None else False,
        callbacks=list(callbacks),
        # A sweep trial's TuneReporter is a Checkpoint callback even when no files are kept.
        enable_checkpointing=cfg.train.keep_checkpoints != "none"
        or any(isinstance(cb, Checkpoint) for cb in callbacks),
        enable_progress_bar=progress,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        deterministic=cfg.train.deterministic,
        default_root_dir=str(root_dir),
        log_every_n_steps=1,
    )


def checkpoint_plugins(cfg: RunConfig, checkpoint_dir: Path) -> list[Any]:
    """The IO that holds `build_callbacks`' best and last checkpoints until training ends."""
    limit = int(cfg.train.checkpoints_in_memory_mb * 2**20)
    if cfg.train.keep_checkpoints == "none" or limit <= 0:
        return []
    names = (BEST_FILE, ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION)
    return [WriteAtTeardownCheckpointIO(checkpoint_dir, names, limit)]


def _data_parallel(accelerator: str, devices: int | str) -> bool:
    if isinstance(devices, int):
        return devices > 1
    return accelerator == "gpu" and torch.cuda.device_count() > 1


def _checkpoint_paths(trainer: pl.Trainer) -> tuple[str | None, str | None]:
    ckpt = run_model_checkpoint(trainer)
    if ckpt is None:
        return None, None
    best = ckpt.best_model_path or None
    last = ckpt.last_model_path or None
    return (best if best and Path(best).exists() else None), (
        last if last and Path(last).exists() else None
    )


def fit(
    cfg: RunConfig,
    *,
    mlflow_logger: Any = None,
    checkpoint_dir: Path | None = None,
    extra_callbacks: Sequence[Callback] = (),
    resume_from: str | None = None,
    run_test: bool = True,
    progress: bool = False,
) -> FitResult:
    """Train one configuration; return its outcome and metrics. Divergence is an outcome."""
    quiet_lightning()
    configure_torch(cfg)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    spec = datamodule.spec
    net = build_model(cfg.model, spec)
    # issue 4: language models (TaskSpec.stateful) carry the hidden state across batches.
    module = (LanguageModelModule if spec.stateful else SequenceModule)(cfg, spec, net)

    tmp = None
    if checkpoint_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="rnnlab-")
        checkpoint_dir = Path(tmp.name)
    # rnnlab's own callbacks skip Lightning's dispatch of the hooks they leave empty; a
    # caller's callbacks are the caller's.
    own = [
        *build_callbacks(cfg, spec, checkpoint_dir),
        *data_callbacks(),
        ResolveDataHooksOnce(),
    ]
    callbacks = [*map(skip_inherited_hooks, own), *extra_callbacks]
    trainer = build_trainer(cfg, callbacks, mlflow_logger, checkpoint_dir, progress)
    result = FitResult(
        outcome="completed", spec=spec, data_facts=datamodule.describe(), workdir=tmp
    )
    try:
        with long_lived_objects_frozen():
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except DivergedError as exc:
        result.outcome = "diverged"
        result.divergence = {
            "step": exc.step,
            "loss": exc.loss,
            "last_finite_loss": exc.last_finite_loss,
            "last_grad_norm": module.last_grad_norm,
        }
        # issue 5: which layer's gradient blew up first (diagnostics.divergence), if measured.
        result.divergence.update(divergence_detail(trainer))
    except Exception as exc:  # ddp_spawn re-raises a child's error under another type
        if "DivergedError" not in repr(exc):
            raise
        result.outcome = "diverged"
        result.divergence = {
            "step": -1,
            "loss": math.nan,
            "last_finite_loss": None,
            "last_grad_norm": None,
        }

    result.history = list(module.history)
    result.metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if _is_number(v)}
    # The last `epoch` metric, not len(history): it counts epochs before a resume, and it comes
    # back from ddp_spawn ranks, whose history stays with them.
    result.epochs = int(result.metrics.get("epoch", len(result.history) - 1)) + 1
    result.best_checkpoint, result.last_checkpoint = _checkpoint_paths(trainer)
    if result.outcome == "completed":
        timer = next((cb for cb in trainer.callbacks if isinstance(cb, Timer)), None)
        if timer is not None and (timer.time_remaining("train") or 0) <= 0:
            result.outcome = "budget"
        if run_test:
            ckpt = result.best_checkpoint or result.last_checkpoint
            trainer.test(module, datamodule=datamodule, ckpt_path=ckpt, verbose=False)
            test = {
                k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/")
            }
            result.metrics.update(test)
            lengths = list(getattr(cfg.task, "eval_lengths", None) or [])
            if lengths and supports_lengths(datamodule):
                result.native_length = datamodule.native_length
                result.by_length = evaluate_lengths(
                    trainer, module, datamodule, lengths, ckpt, at_native=test
                )
    return result


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False
