"""Overhead of rnnlab's training path against a hand-written PyTorch loop and bare Lightning.

The ways train the same network on the same tensors for the same number of epochs, in one
process, interleaved (the order rotates every repeat) so that machine noise hits all of them:

  hand      a plain loop: nn.LSTM + Linear, Adam, clip_grad_norm_, DataLoader(TensorDataset)
  lightning a minimal LightningModule + Trainer (no logger, checkpoints or progress bar)
  lightning-ckpt  the same with Lightning's default checkpointing on (its ModelCheckpoint()
            writes a checkpoint every epoch): what a bare Lightning script gets by default,
            and the baseline that pays for a per-epoch write as rnnlab does (reference only)
  rnnlab    `rnnlab.training.tracked.train_tracked(cfg)` (which calls `fit(cfg)`) with MLflow
            logging on, against a temporary `sqlite:///.../mlflow.db`, checkpoints on, under
            the `rnnlab` command's collector policy (paused until training starts). Its
            loaders fetch each batch in one indexing call (rnnlab/data/stacked.py) where the
            baselines' DataLoader(TensorDataset) fetches example by example; the
            `rnnlab-perexample` ablation runs rnnlab on the baselines' data path

Workloads (issue 2, item 11):

  parity    Lightning's own parity benchmark (`ParityModuleRNN` + `AverageDataset` in
            Lightning's tests): LSTM(10->20) and Linear(20->5) on every step, MSE, Adam lr 0.02,
            300 sequences x 100 steps x 10 features, batch 30. "Parity" there means parity with
            plain PyTorch; the data is Gaussian noise with per-step regression targets. rnnlab
            trains it through a task registered below.
  realistic 2-layer LSTM, hidden 256, 100 steps, batch 64, on rnnlab's built-in adding task.

Every way validates on the same validation batches each epoch, because rnnlab always does.
An epoch is timed (wall and process CPU) from one `on_train_epoch_start` to the next, the last
to `on_train_end` (a Lightning callback; the hand loop takes the same timestamps), so it holds
validation, rnnlab's metric logging and the checkpoints Lightning writes in
`on_train_epoch_end`. Set-up runs from the start of building (for rnnlab: Hydra composition
of the config) to the first training step; imports are excluded and shown once.

    python benchmarks/overhead.py --threads 1     # full run (~7 min on 2 cores)
    python benchmarks/overhead.py --quick         # smoke run: a few batches, 2 epochs
    python benchmarks/overhead.py --accelerator gpu --precision 16-mixed   # on one CUDA GPU
    python benchmarks/overhead.py --workloads parity --ablations   # rnnlab minus one cost each
    python benchmarks/overhead.py --breakdown     # per-piece costs, interleaved microbenchmarks
    python benchmarks/overhead.py --profile rnnlab --workloads parity   # cProfile of one run

Results and the commands that produced them: docs/benchmarks.md.
"""

from __future__ import annotations

import time

_IMPORT_START = time.perf_counter()

import argparse  # noqa: E402
import cProfile  # noqa: E402
import datetime as dt  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from itertools import pairwise  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, ClassVar  # noqa: E402
from unittest.mock import patch  # noqa: E402

import pytorch_lightning as pl  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from rnnlab.cli import load_run_config  # noqa: E402
from rnnlab.collector import paused_for_startup  # noqa: E402
from rnnlab.data.base import TaskSpec  # noqa: E402
from rnnlab.data.synthetic import GeneratedTaskConfig, GeneratedTaskDataModule  # noqa: E402
from rnnlab.models import build_model  # noqa: E402
from rnnlab.registry import register_task  # noqa: E402
from rnnlab.training.fit import FitResult, build_datamodule, fit, quiet_lightning  # noqa: E402
from rnnlab.training.tracked import open_run, train_tracked  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - _IMPORT_START

WAYS = ("hand", "lightning", "lightning-ckpt", "rnnlab")
ABLATIONS = (
    "rnnlab-async",
    "rnnlab-buffered",
    "rnnlab-nockpt",
    "rnnlab-nomlflow",
    "rnnlab-core",
    "rnnlab-asyncckpt",
    "rnnlab-syncckpt",
    "rnnlab-allhooks",
    "rnnlab-perexample",
)
LABELS = {
    "hand": "hand loop",
    "lightning": "bare Lightning",
    "lightning-ckpt": "Lightning+its ckpt",
    "rnnlab": "rnnlab fit+MLflow",
    "rnnlab-async": " ..async MLflow",
    "rnnlab-buffered": " ..MLflow every 10 s",
    "rnnlab-nockpt": " ..no checkpoints",
    "rnnlab-nomlflow": " ..no MLflow",
    "rnnlab-core": " ..neither",
    "rnnlab-asyncckpt": " ..async checkpoints",
    "rnnlab-syncckpt": " ..ckpt written at once",
    "rnnlab-allhooks": " ..every hook called",
    "rnnlab-perexample": " ..examples fetched 1 by 1",
}
SHORT = {
    "hand": "hand loop",
    "lightning": "bare Lightning",
    "lightning-ckpt": "Lightning+ckpt",
    "rnnlab": "rnnlab",
}
TARGET_RATIO = 1.05
TARGET_SETUP_S = 3.0


# --- Lightning's parity task, as an rnnlab task -------------------------------------------


def average_dataset(
    num: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lightning's `AverageDataset`: x ~ N(0, 1) of (num, T, 10); y = top + roll(bottom, 1)."""
    inputs = torch.randn(num, seq_len, 10, generator=generator)
    top, bottom = inputs.chunk(2, -1)
    return inputs, top + bottom.roll(shifts=1, dims=-1)


class LightningAverageConfig(GeneratedTaskConfig):
    task_label: ClassVar[str] = "Lightning parity benchmark"

    name: str = "lightning_average"


@register_task("lightning_average")
class LightningAverageDataModule(GeneratedTaskDataModule):
    """Lightning's parity-benchmark data: per-step regression of 5 targets from 10 features."""

    Config: ClassVar[type[GeneratedTaskConfig]] = LightningAverageConfig
    task_name: ClassVar[str] = "lightning_average"

    @property
    def spec(self) -> TaskSpec:
        return TaskSpec(
            head="many_to_many",
            loss="mse",
            input_kind="real",
            input_size=10,
            output_size=5,
            metrics=("mse",),
            monitor="val/loss",
            monitor_mode="min",
        )

    def generate(
        self, num: int, seq_len: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return average_dataset(num, seq_len, generator)


# --- workloads ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    overrides: tuple[str, ...]  # rnnlab overrides; the baselines read shapes from the result


def workloads(quick: bool) -> dict[str, Workload]:
    # --quick keeps every shape and cuts the number of sequences to a few batches.
    p_train, p_val = (60, 30) if quick else (300, 30)
    r_train, r_val = (128, 64) if quick else (640, 128)
    return {
        "parity": Workload(
            "parity",
            f"Lightning parity RNN: LSTM(10->20), {p_train} seq x 100 steps x 10 features, "
            f"batch 30 ({p_val} val seq)",
            (
                "model=lstm",
                "model.hidden_size=20",
                "task=adding",
                "task.name=lightning_average",
                "task.seq_len=100",
                f"task.train_size={p_train}",
                f"task.val_size={p_val}",
                "task.test_size=30",
                "train.batch_size=30",
                "train.lr=0.02",
            ),
        ),
        "realistic": Workload(
            "realistic",
            f"2-layer LSTM, hidden 256, adding task: {r_train} seq x 100 steps x 2 features, "
            f"batch 64 ({r_val} val seq)",
            (
                "model=lstm",
                "model.num_layers=2",
                "model.hidden_size=256",
                "task=adding",
                "task.seq_len=100",
                f"task.train_size={r_train}",
                f"task.val_size={r_val}",
                "task.test_size=64",
                "train.batch_size=64",
                "train.lr=0.001",
            ),
        ),
    }


def hardware_overrides(threads: int, accelerator: str, precision: str) -> tuple[str, ...]:
    """rnnlab's hardware overrides; the two baselines read device and precision back from them."""
    group = ("hardware=gpu",) if accelerator == "gpu" else ()
    return (*group, f"hardware.precision={precision}", f"hardware.threads={threads}")


def rnnlab_overrides(
    work: Workload, epochs: int, hardware: Sequence[str], store: Path
) -> list[str]:
    return [
        *work.overrides,
        f"train.max_epochs={epochs}",
        # Same number of epochs in every way: nothing may stop early.
        "train.early_stopping.enabled=false",
        "train.clip.mode=norm",
        "train.clip.threshold=1.0",
        "train.seed=0",
        *hardware,
        f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
        f"tracking.artifact_location={(store / 'artifacts').as_uri()}",
        "tracking.experiment=overhead-benchmark",
    ]


# --- the shared problem: data, initial weights ------------------------------------------------


@dataclass
class Problem:
    """What the two baselines train: rnnlab's own tensors and rnnlab's initial weights."""

    cfg: Any
    spec: TaskSpec
    train: TensorDataset
    val: TensorDataset
    batch_size: int
    lr: float
    clip: float
    epochs: int
    initial_state: dict[str, torch.Tensor]
    hardware: tuple[str, ...]
    input_size: int
    hidden_size: int
    num_layers: int


def build_problem(work: Workload, epochs: int, hardware: tuple[str, ...], store: Path) -> Problem:
    cfg = load_run_config("train", rnnlab_overrides(work, epochs, hardware, store))
    dm = build_datamodule(cfg)
    spec = dm.spec
    # fit() seeds and then builds the net the same way, so these are its initial weights.
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    net = build_model(cfg.model, spec)
    state: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(net.layers):
        for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            state[f"rnn.{kind}_l{i}"] = getattr(layer, f"{kind}_l0").detach().clone()
    state["head.weight"] = net.head.weight.detach().clone()
    state["head.bias"] = net.head.bias.detach().clone()
    return Problem(
        cfg=cfg,
        spec=spec,
        train=dm.dataset("train"),
        val=dm.dataset("val"),
        batch_size=cfg.train.batch_size,
        lr=cfg.train.lr,
        clip=cfg.train.clip.threshold,
        epochs=epochs,
        initial_state=state,
        hardware=hardware,
        input_size=spec.input_size,
        hidden_size=cfg.model.hidden_size,
        num_layers=cfg.model.num_layers,
    )


class PlainNet(nn.Module):
    """What one writes by hand: one multi-layer nn.LSTM and a linear head."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        self.many_to_one = problem.spec.head == "many_to_one"
        self.rnn = nn.LSTM(
            problem.input_size,
            problem.hidden_size,
            num_layers=problem.num_layers,
            batch_first=True,
        )
        self.head = nn.Linear(problem.hidden_size, problem.spec.output_size)
        self.load_state_dict(problem.initial_state)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1] if self.many_to_one else out)


def baseline_loaders(problem: Problem) -> tuple[DataLoader, DataLoader]:
    gen = torch.Generator().manual_seed(problem.cfg.train.seed)
    train = DataLoader(problem.train, batch_size=problem.batch_size, shuffle=True, generator=gen)
    val = DataLoader(problem.val, batch_size=problem.batch_size, shuffle=False)
    return train, val


# --- timing -----------------------------------------------------------------------------------


@dataclass
class Timing:
    way: str
    setup_s: float
    setup_cpu_s: float
    # One epoch runs from its on_train_epoch_start to the next one's (the last: on_train_end),
    # so it holds everything the epoch costs, checkpoint writes in on_train_epoch_end included.
    epoch_s: list[float]
    epoch_cpu_s: list[float]  # process CPU time over the same spans: robust to other load
    after_end_s: list[float]  # the part after on_train_epoch_end (checkpoint saves, loop glue)
    final_train_loss: float
    # Set-up split into its parts, where the way has them (rnnlab: compose, MLflow run, fit).
    phases: dict[str, float] = field(default_factory=dict)


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


@dataclass
class Clock:
    """Timestamps of one run; with `profile`, a cProfile of set-up and one of steady epochs."""

    build_start: float
    profile: bool = False
    build_start_cpu: float = field(default_factory=time.process_time)
    first_step: float | None = None
    first_step_cpu: float | None = None
    marks: dict[str, float] = field(default_factory=dict)
    starts: list[tuple[float, float]] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    train_end: tuple[float, float] | None = None
    loss_sum: float = 0.0
    loss_n: int = 0
    last_epoch_loss: float = float("nan")
    setup_profile: cProfile.Profile | None = None
    steady_profile: cProfile.Profile | None = None

    def __post_init__(self) -> None:
        if self.profile:
            self.setup_profile = cProfile.Profile()
            self.steady_profile = cProfile.Profile()
            self.setup_profile.enable()

    def mark(self, name: str) -> None:
        self.marks.setdefault(name, time.perf_counter())

    def epoch_start(self) -> None:
        self.starts.append(_now())
        self.loss_sum, self.loss_n = 0.0, 0
        if self.steady_profile is not None and len(self.starts) == 2:
            self.steady_profile.enable()

    def step_start(self) -> None:
        if self.first_step is None:
            self.first_step = time.perf_counter()
            self.first_step_cpu = time.process_time()
            if self.setup_profile is not None:
                self.setup_profile.disable()

    def step_loss(self, value: float) -> None:
        self.loss_sum += value
        self.loss_n += 1

    def epoch_end(self) -> None:
        self.ends.append(time.perf_counter())
        self.last_epoch_loss = self.loss_sum / max(self.loss_n, 1)

    def finish(self) -> None:
        if self.train_end is None:
            self.train_end = _now()
        if self.steady_profile is not None:
            self.steady_profile.disable()

    def timing(self, way: str) -> Timing:
        assert self.first_step is not None, f"{way}: no training step ran"
        self.finish()
        assert self.train_end is not None
        points = [("start", self.build_start), *self.marks.items(), ("first step", self.first_step)]
        phases = {f"{a}->{b}": tb - ta for (a, ta), (b, tb) in pairwise(points)}
        bounds = [*self.starts, self.train_end]
        return Timing(
            way=way,
            setup_s=self.first_step - self.build_start,
            setup_cpu_s=(self.first_step_cpu or 0.0) - self.build_start_cpu,
            epoch_s=[b[0] - a[0] for a, b in pairwise(bounds)],
            epoch_cpu_s=[b[1] - a[1] for a, b in pairwise(bounds)],
            after_end_s=[b[0] - e for e, b in zip(self.ends, bounds[1:], strict=True)],
            final_train_loss=self.last_epoch_loss,
            phases=phases if self.marks else {},
        )


class EpochClockCallback(pl.Callback):
    """Times epochs and the first step inside Lightning; reads each step's loss from outputs."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.clock.mark("trainer.fit")

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.epoch_start()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[override]
        self.clock.step_start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[override]
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.clock.step_loss(float(loss))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.epoch_end()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.clock.finish()


# --- the three ways ---------------------------------------------------------------------------


def device_of(problem: Problem) -> torch.device:
    return torch.device("cuda" if problem.cfg.hardware.accelerator == "gpu" else "cpu")


def run_hand(problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path) -> Timing:
    """The loop one writes by hand, with autocast and a gradient scaler under mixed precision
    (as Lightning's precision plugins do): clipping acts on unscaled gradients."""
    torch.manual_seed(problem.cfg.train.seed)
    device = device_of(problem)
    precision = str(problem.cfg.hardware.precision)
    amp_dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")
    model = PlainNet(problem).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=problem.lr)
    train_loader, val_loader = baseline_loaders(problem)
    for _ in range(epochs):
        clock.epoch_start()
        model.train()
        for x, y in train_loader:
            clock.step_start()
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                loss = F.mse_loss(model(x), y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), problem.clip)
            scaler.step(optimizer)
            scaler.update()
            clock.step_loss(loss.item())
        model.eval()
        with (
            torch.inference_mode(),  # as Lightning's validation loop does
            torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None),
        ):
            val = [F.mse_loss(model(x.to(device)), y.to(device)) for x, y in val_loader]
        _ = float(torch.stack(val).mean())
        clock.epoch_end()
    clock.finish()
    return clock.timing("hand")


class BareModule(pl.LightningModule):
    """The smallest LightningModule that trains PlainNet: no self.log, no metrics."""

    def __init__(self, problem: Problem) -> None:
        super().__init__()
        self.net = PlainNet(problem)
        self.lr = problem.lr

    def training_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def validation_step(self, batch: Sequence[torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.mse_loss(self.net(x), y)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)


def run_lightning(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    return _run_bare_lightning(problem, epochs, clock, store, "lightning", checkpoints=False)


def run_lightning_checkpoints(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    """Bare Lightning with its default checkpointing: ModelCheckpoint() saving every epoch."""
    return _run_bare_lightning(problem, epochs, clock, store, "lightning-ckpt", checkpoints=True)


def _run_bare_lightning(
    problem: Problem, epochs: int, clock: Clock, store: Path, way: str, checkpoints: bool
) -> Timing:
    torch.manual_seed(problem.cfg.train.seed)
    module = BareModule(problem)
    train_loader, val_loader = baseline_loaders(problem)
    trainer = pl.Trainer(
        accelerator=problem.cfg.hardware.accelerator,
        precision=problem.cfg.hardware.precision,
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=checkpoints,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        gradient_clip_val=problem.clip,
        gradient_clip_algorithm="norm",
        callbacks=[EpochClockCallback(clock)],
        # A fresh folder per run: a checkpoint left by the last repeat would draw a warning.
        default_root_dir=tempfile.mkdtemp(prefix=f"{way}-", dir=store),
    )
    trainer.fit(module, train_dataloaders=train_loader, val_dataloaders=val_loader)
    return clock.timing(way)


def run_rnnlab(problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path) -> Timing:
    """rnnlab as `rnnlab train` runs it: train_tracked (MLflow on, checkpoints on)."""
    cfg = _rnnlab_config(problem, work, epochs, clock, store)
    # What train_tracked does first when given no handle; done here to time it on its own.
    handle = open_run(cfg)
    clock.mark("MLflow run opened")
    result = train_tracked(
        cfg, handle=handle, extra_callbacks=[EpochClockCallback(clock)], run_test=False
    )
    _check_complete(result.fit, epochs, f"rnnlab run {result.run.run_id}")
    return clock.timing("rnnlab")


def _rnnlab_config(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path, *extra: str
) -> Any:
    overrides = rnnlab_overrides(work, epochs, problem.hardware, store)
    cfg = load_run_config("train", [*overrides, *extra])
    clock.mark("config composed")
    return cfg


def _check_complete(result: FitResult, epochs: int, what: str) -> None:
    if result.outcome != "completed" or len(result.history) != epochs:
        raise RuntimeError(
            f"{what} ended '{result.outcome}' after {len(result.history)} of {epochs} epochs; "
            "the comparison would be unfair"
        )


# --- ablations: rnnlab with one cost removed, to attribute its overhead (--ablations) --------


def _tracked(cfg: Any, epochs: int, clock: Clock, way: str, what: str) -> Timing:
    """One rnnlab run as `rnnlab train` makes it (MLflow on), timed as `way`."""
    result = train_tracked(cfg, extra_callbacks=[EpochClockCallback(clock)], run_test=False)
    _check_complete(result.fit, epochs, what)
    return clock.timing(way)


def _untracked(cfg: Any, epochs: int, clock: Clock, way: str, what: str) -> Timing:
    """One bare `fit(cfg)` (no MLflow), timed as `way`; its checkpoint folder is removed."""
    result = fit(cfg, extra_callbacks=[EpochClockCallback(clock)], run_test=False)
    _check_complete(result, epochs, what)
    if result.workdir is not None:
        result.workdir.cleanup()
    return clock.timing(way)


def run_rnnlab_no_checkpoints(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    cfg = _rnnlab_config(problem, work, epochs, clock, store, "train.keep_checkpoints=none")
    return _tracked(cfg, epochs, clock, "rnnlab-nockpt", "rnnlab run without checkpoints")


def run_rnnlab_no_mlflow(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    cfg = _rnnlab_config(problem, work, epochs, clock, store)
    return _untracked(cfg, epochs, clock, "rnnlab-nomlflow", "rnnlab fit without MLflow")


def run_rnnlab_async_checkpoints(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    """rnnlab with Lightning's AsyncCheckpointIO: checkpoints cloned on the training thread
    and written by a background one. Measures what moving the writes off the loop would gain
    before rnnlab's fit (and the sweep's synchronous Tune checkpoints) is changed for it."""
    from pytorch_lightning.plugins.io import AsyncCheckpointIO

    import rnnlab.training.fit as fit_module

    trainer_cls = fit_module.pl.Trainer

    class AsyncIOTrainer(trainer_cls):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "plugins": [AsyncCheckpointIO()]})

    cfg = _rnnlab_config(problem, work, epochs, clock, store)
    with patch.object(fit_module.pl, "Trainer", AsyncIOTrainer):
        return _tracked(cfg, epochs, clock, "rnnlab-asyncckpt", "rnnlab run with async checkpoints")


def run_rnnlab_sync_checkpoints(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    """rnnlab writing each checkpoint when it is made (train.checkpoints_in_memory_mb=0), as
    it did before checkpoints were held in memory until the end of training."""
    cfg = _rnnlab_config(problem, work, epochs, clock, store, "train.checkpoints_in_memory_mb=0")
    return _tracked(cfg, epochs, clock, "rnnlab-syncckpt", "rnnlab run writing checkpoints at once")


def run_rnnlab_all_hooks(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    """rnnlab with Lightning calling every hook of its callbacks, the empty ones included,
    as before `training/callback_hooks.py`: what hiding them saves, in the same process."""
    import rnnlab.training.fit as fit_module
    from rnnlab.training.model_checkpoint import RelocatableModelCheckpoint

    setup = RelocatableModelCheckpoint.setup

    def setup_keeping_the_batch_hook(self: Any, *args: Any, **kwargs: Any) -> None:
        setup(self, *args, **kwargs)
        vars(self).pop("on_train_batch_end", None)

    cfg = _rnnlab_config(problem, work, epochs, clock, store)
    with (
        patch.object(fit_module, "skip_inherited_hooks", lambda callback: callback),
        patch.object(RelocatableModelCheckpoint, "setup", setup_keeping_the_batch_hook),
    ):
        return _tracked(cfg, epochs, clock, "rnnlab-allhooks", "rnnlab run with every hook called")


def run_rnnlab_per_example(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    """rnnlab with its loaders fetching one example at a time and stacking them in the
    collate, as the baselines' DataLoader(TensorDataset) does and as rnnlab did before
    `rnnlab/data/stacked.py`: the rest of rnnlab's epoch against the same data path."""
    from rnnlab.data.stacked import StackedTensorDataset

    cfg = _rnnlab_config(problem, work, epochs, clock, store)
    # PyTorch's fetcher takes the per-example path when `__getitems__` is falsy.
    with patch.object(StackedTensorDataset, "__getitems__", None):
        return _tracked(
            cfg, epochs, clock, "rnnlab-perexample", "rnnlab run fetching examples one by one"
        )


def run_rnnlab_core(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    """Only rnnlab's data path, model and LightningModule: no MLflow, no checkpoints."""
    cfg = _rnnlab_config(problem, work, epochs, clock, store, "train.keep_checkpoints=none")
    return _untracked(cfg, epochs, clock, "rnnlab-core", "rnnlab fit without MLflow or checkpoints")


def _run_with_logger(
    problem: Problem,
    work: Workload,
    epochs: int,
    clock: Clock,
    store: Path,
    way: str,
    make_logger: Callable[[Any, str], Any],
) -> Timing:
    """train_tracked's steps (open run, fit with an MLflow logger, record, close) with another
    logger: how a fix in rnnlab/training/tracked.py would behave, measured before it exists."""
    from rnnlab.tracking import runs
    from rnnlab.training.tracked import record_result

    cfg = _rnnlab_config(problem, work, epochs, clock, store)
    handle = open_run(cfg)
    clock.mark("MLflow run opened")
    logger = make_logger(cfg, handle.run_id)
    result = fit(
        cfg, mlflow_logger=logger, extra_callbacks=[EpochClockCallback(clock)], run_test=False
    )
    if hasattr(logger, "flush_async"):
        logger.flush_async()
    logged = len(logger.experiment.get_metric_history(handle.run_id, "val/loss"))
    if logged != epochs:
        raise RuntimeError(f"{way}: MLflow kept {logged} of {epochs} val/loss values")
    record_result(handle, cfg, result)
    runs.end_run(handle, result.outcome)
    if result.workdir is not None:
        result.workdir.cleanup()
    _check_complete(result, epochs, f"rnnlab run ({way})")
    return clock.timing(way)


def _async_logger(cfg: Any, run_id: str) -> Any:
    """MLFlowLogger(synchronous=False): each log_batch is queued on MLflow's logging thread."""
    from pytorch_lightning.loggers import MLFlowLogger

    class AsyncMLFlowLogger(MLFlowLogger):
        def flush_async(self) -> None:
            # The store MLflow caches per URI owns the queue; mlflow.flush_async_logging()
            # would flush the store of the *global* tracking URI (and create ./mlflow.db).
            self.experiment._tracking_client.store.flush_async_logging()

    return AsyncMLFlowLogger(
        experiment_name=cfg.tracking.experiment,
        tracking_uri=cfg.tracking.uri,
        run_id=run_id,
        synchronous=False,
    )


def _buffered_logger(cfg: Any, run_id: str) -> Any:
    """An MLFlowLogger that writes metrics at most every 10 s, and always when Lightning
    finalizes it (end of every fit/test stage, and on an exception: DivergedError too)."""
    from mlflow.entities import Metric
    from pytorch_lightning.loggers import MLFlowLogger
    from pytorch_lightning.utilities import rank_zero_only

    class BufferedMLFlowLogger(MLFlowLogger):
        def __init__(self, *args: Any, flush_every_s: float = 10.0, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.flush_every_s = flush_every_s
            self._pending: list[Any] = []
            self._last_flush = time.monotonic()

        @rank_zero_only
        def log_metrics(self, metrics: Any, step: int | None = None) -> None:
            now = int(time.time() * 1000)
            self._pending += [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
            if time.monotonic() - self._last_flush >= self.flush_every_s:
                self.flush()

        def flush(self) -> None:
            for i in range(0, len(self._pending), 1000):
                self.experiment.log_batch(self.run_id, metrics=self._pending[i : i + 1000])
            self._pending = []
            self._last_flush = time.monotonic()

        @rank_zero_only
        def finalize(self, status: str = "success") -> None:
            self.flush()
            super().finalize(status)

    return BufferedMLFlowLogger(
        experiment_name=cfg.tracking.experiment, tracking_uri=cfg.tracking.uri, run_id=run_id
    )


def run_rnnlab_async_mlflow(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    return _run_with_logger(problem, work, epochs, clock, store, "rnnlab-async", _async_logger)


def run_rnnlab_buffered_mlflow(
    problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    return _run_with_logger(
        problem, work, epochs, clock, store, "rnnlab-buffered", _buffered_logger
    )


RUNNERS: dict[str, Callable[[Problem, Workload, int, Clock, Path], Timing]] = {
    "hand": run_hand,
    "lightning": run_lightning,
    "lightning-ckpt": run_lightning_checkpoints,
    "rnnlab": run_rnnlab,
    "rnnlab-async": run_rnnlab_async_mlflow,
    "rnnlab-buffered": run_rnnlab_buffered_mlflow,
    "rnnlab-nockpt": run_rnnlab_no_checkpoints,
    "rnnlab-nomlflow": run_rnnlab_no_mlflow,
    "rnnlab-core": run_rnnlab_core,
    "rnnlab-asyncckpt": run_rnnlab_async_checkpoints,
    "rnnlab-syncckpt": run_rnnlab_sync_checkpoints,
    "rnnlab-allhooks": run_rnnlab_all_hooks,
    "rnnlab-perexample": run_rnnlab_per_example,
}


def run_way(
    way: str, problem: Problem, work: Workload, epochs: int, clock: Clock, store: Path
) -> Timing:
    """One run of `way`. rnnlab's ways run under the `rnnlab` command's collector policy
    (the collector paused until training starts, rnnlab/collector.py), as `rnnlab train`
    runs them; the policy changes their set-up, not their epochs."""
    if not way.startswith("rnnlab"):
        return RUNNERS[way](problem, work, epochs, clock, store)
    with paused_for_startup():
        return RUNNERS[way](problem, work, epochs, clock, store)


# --- report -----------------------------------------------------------------------------------


def steady(timings: list[Timing], attr: str = "epoch_s") -> list[float]:
    """Epoch times after each run's first epoch, pooled over repeats."""
    return [t for run in timings for t in getattr(run, attr)[1:]]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report_workload(work: Workload, results: dict[str, list[Timing]], realistic: bool) -> bool:
    print(f"\n== {work.name}: {work.title}")
    print(
        f"{'way':<19} {'set-up s':>9} {'(first)':>8} {'epoch s':>9} {'min':>8} {'max':>8} "
        f"{'cpu s':>8} {'ckpt ms':>8} {'n':>3} {'train loss':>11}"
    )
    wall: dict[str, float] = {}
    fastest: dict[str, float] = {}
    cpu: dict[str, float] = {}
    for way, runs in results.items():
        if not runs:
            continue
        ss = steady(runs)
        wall[way] = median(ss)
        fastest[way] = min(ss, default=float("nan"))
        cpu[way] = median(steady(runs, "epoch_cpu_s"))
        print(
            f"{LABELS[way]:<19} {median([r.setup_s for r in runs]):>9.3f} "
            f"{runs[0].setup_s:>8.3f} {wall[way]:>9.4f} "
            f"{fastest[way]:>8.4f} {max(ss, default=float('nan')):>8.4f} "
            f"{cpu[way]:>8.4f} {1000 * median(steady(runs, 'after_end_s')):>8.2f} "
            f"{len(ss):>3} {runs[-1].final_train_loss:>11.5f}"
        )
    ok = True
    pairs = [
        ("rnnlab", "lightning", True),
        ("rnnlab", "lightning-ckpt", None),
        ("rnnlab", "hand", realistic),
        ("lightning", "hand", None),
        ("lightning-ckpt", "lightning", None),
    ]
    for num, den, targeted in pairs:
        if num not in wall or den not in wall:
            continue
        r = wall[num] / wall[den]
        r_cpu = cpu[num] / cpu[den]
        # Fastest epoch against fastest epoch: on a machine whose speed drifts, the least
        # disturbed estimate of each way's own cost (as timeit's min); the target uses medians.
        r_min = fastest[num] / fastest[den]
        name = f"ratio {SHORT[num]}/{SHORT[den]}:"
        if targeted:
            ok &= r <= TARGET_RATIO
            note = f"target <= {TARGET_RATIO}x: {_verdict(r)}"
        else:
            note = "no target on this workload" if targeted is False else "for reference"
        print(f"{name:<32} {r:.3f}x wall, {r_cpu:.3f}x cpu, {r_min:.3f}x fastest ({note})")
    for way in ABLATIONS:
        if way in wall and "lightning" in wall:
            r = wall[way] / wall["lightning"]
            print(
                f"{'  ablation ' + way + '/Lightning:':<32} {r:.3f}x wall, "
                f"{cpu[way] / cpu['lightning']:.3f}x cpu"
            )
    if "rnnlab" in results:
        for i, run in enumerate(results["rnnlab"]):
            print(
                f"rnnlab set-up, run {i + 1}: {run.setup_s:.3f} s wall, {run.setup_cpu_s:.3f} s cpu "
                f"{_phases(run)}"
            )
        worst = max(r.setup_s for r in results["rnnlab"])
        ok &= worst <= TARGET_SETUP_S
        verdict = "met" if worst <= TARGET_SETUP_S else "MISSED"
        print(
            f"rnnlab set-up (worst run): {worst:.2f} s (target <= {TARGET_SETUP_S:g} s: {verdict})"
        )
    return ok


def _verdict(ratio: float) -> str:
    return "met" if ratio <= TARGET_RATIO else "MISSED"


# --- driver -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="overhead.py",
        description="Epoch-time overhead of rnnlab vs bare Lightning vs a hand-written loop.",
    )
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default 5)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="runs per way, interleaved (default 3)"
    )
    parser.add_argument(
        "--workloads",
        default="parity,realistic",
        help="comma-separated: parity, realistic (default both)",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads, all ways (default: torch's)"
    )
    parser.add_argument(
        "--accelerator",
        choices=("cpu", "gpu"),
        default="cpu",
        help="device for every way (gpu: rnnlab's hardware=gpu, one CUDA device)",
    )
    parser.add_argument(
        "--precision",
        choices=("32", "16-mixed", "bf16-mixed"),
        default="32",
        help="precision for every way: Lightning's names; the hand loop uses autocast",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 2 epochs, 1 repeat, a few batches"
    )
    parser.add_argument(
        "--profile",
        choices=WAYS + ABLATIONS,
        default=None,
        help="run only this way once under cProfile and print where its time goes",
    )
    parser.add_argument(
        "--ablations",
        action="store_true",
        help="also run rnnlab with MLflow async / buffered, without checkpoints, MLflow, both",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="time rnnlab's per-step pieces (loader, loss, metrics, clipping, MLflow) on their own",
    )
    parser.add_argument(
        "--gc",
        action="store_true",
        help="per run: garbage collections during training (count, ms) and the first epoch",
    )
    parser.add_argument("--profile-lines", type=int, default=30, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.epochs = args.epochs or (2 if args.quick else 5)
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.epochs < 2:
        parser.error("--epochs must be >= 2: the first epoch is warm-up and not counted")
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        parser.error("--accelerator gpu needs a CUDA device, and torch sees none")
    if args.accelerator == "cpu" and args.precision == "16-mixed":
        parser.error("--precision 16-mixed needs --accelerator gpu; on CPU use bf16-mixed")
    if args.breakdown and args.accelerator == "gpu":
        parser.error("--breakdown times CPU pieces only; drop --accelerator gpu")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in args.workloads if w not in ("parity", "realistic")]
    if unknown:
        parser.error(f"unknown workload(s) {unknown}; valid: parity, realistic")
    return args


def print_profile(title: str, profile: cProfile.Profile | None, lines: int) -> None:
    if profile is None:
        return
    for key in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profile, stream=out).strip_dirs().sort_stats(key).print_stats(lines)
        body = out.getvalue()
        # Drop pstats' preamble up to the column header.
        body = body[body.find("   ncalls") :] if "   ncalls" in body else body
        print(f"\n-- {title}, by {key} time\n{body.rstrip()}")
    if os.environ.get("RNNLAB_PROFILE_DUMP"):  # for pstats diffs between ways
        profile.dump_stats(f"{os.environ['RNNLAB_PROFILE_DUMP']}-{title.split()[0]}.prof")
    if os.environ.get("RNNLAB_PROFILE_CALLERS"):
        pstats.Stats(profile).strip_dirs().sort_stats("tottime").print_callers(
            os.environ["RNNLAB_PROFILE_CALLERS"]
        )


def profile_way(way: str, problem: Problem, work: Workload, args: argparse.Namespace, store: Path):
    """One run of `way`: a cProfile of its set-up, one of its epochs after the first."""
    clock = Clock(time.perf_counter(), profile=True)
    timing = run_way(way, problem, work, args.epochs, clock, store)
    print(f"\n== profile of {LABELS[way]} on {work.name}")
    print(f"set-up {timing.setup_s:.3f} s wall, {timing.setup_cpu_s:.3f} s cpu {_phases(timing)}")
    print(f"epochs (s): {' '.join(f'{t:.4f}' for t in timing.epoch_s)}")
    print_profile("set-up", clock.setup_profile, args.profile_lines)
    print_profile(f"epochs 2..{args.epochs}", clock.steady_profile, args.profile_lines)


def _phases(timing: Timing) -> str:
    if not timing.phases:
        return ""
    return "(" + ", ".join(f"{k} {v:.3f}" for k, v in timing.phases.items()) + ")"


# --- per-step breakdown (--breakdown): what each piece of rnnlab's step costs vs a plain step --


def _per_call(
    fns: Sequence[Callable[[], Any]],
    calls: int,
    rounds: int = 7,
    clock: Callable[[], float] = time.process_time,
) -> list[float]:
    """Seconds per call of each of `fns`: median over `rounds`, the functions interleaved.

    CPU time by default, which other processes on a shared machine barely disturb; pieces
    that wait on a disk (SQLite commits, checkpoint files) pass `clock=time.perf_counter`.
    """
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, out in zip(fns, samples, strict=True):
            t = clock()
            for _ in range(calls):
                fn()
            out.append((clock() - t) / calls)
    return [statistics.median(out) for out in samples]


def breakdown(problem: Problem, work: Workload, args: argparse.Namespace, store: Path) -> None:
    """Microbenchmarks of rnnlab's per-step and per-epoch pieces against their plain versions.

    Per call: CPU ms (I/O pieces: wall ms); per epoch: calls per epoch x per call. "extra" is
    what rnnlab's piece costs per epoch beyond the plain piece a hand loop or bare Lightning
    uses (or beyond nothing, where they have no such piece).
    """
    from lightning_fabric.utilities.apply_func import move_data_to_device
    from mlflow.entities import Metric
    from torch.utils.data import default_collate

    from rnnlab.data.collate import PadCollate
    from rnnlab.tracking import runs
    from rnnlab.training.data_logging import PaddingFraction
    from rnnlab.training.module import SequenceModule
    from rnnlab.training.objectives import loss_fn, valid_pairs

    cfg, spec = problem.cfg, problem.spec
    dm = build_datamodule(cfg)
    dm.setup("fit")
    rn_train, rn_val = dm.train_dataloader(), dm.val_dataloader()
    pl_train, _ = baseline_loaders(problem)
    steps, val_steps = len(rn_train), len(rn_val)
    batch = next(iter(rn_train))
    x, y, lengths = batch
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    net = build_model(cfg.model, spec)
    module = SequenceModule(cfg, spec, net)
    plain = PlainNet(problem)
    big = problem.hidden_size > 64
    rows: list[tuple[str, float, float | None, int]] = []

    def add(
        name: str,
        rnnlab_fn: Callable[[], Any],
        plain_fn: Callable[[], Any] | None,
        calls: int,
        per_epoch: int,
        **kw: Any,
    ) -> None:
        fns = [rnnlab_fn] if plain_fn is None else [rnnlab_fn, plain_fn]
        costs = _per_call(fns, calls, **kw)
        rows.append((name, costs[0], costs[1] if plain_fn else None, per_epoch))

    add(
        "loader: sample + collate, per batch",
        lambda: [b for b in rn_train],
        lambda: [b for b in pl_train],
        1,
        steps,
    )
    rows[-1] = (rows[-1][0], rows[-1][1] / steps, (rows[-1][2] or 0.0) / steps, steps)
    examples = [dm.dataset("train")[i] for i in range(problem.batch_size)]
    collate = PadCollate.from_spec(spec)
    add(
        "  of which collate",
        lambda: collate(examples),
        lambda: default_collate(examples),
        200,
        steps,
    )
    cpu = torch.device("cpu")
    add(
        "Lightning batch_to_device",
        lambda: move_data_to_device(batch, cpu),
        lambda: move_data_to_device([x, y], cpu),
        1000,
        steps + val_steps,
    )

    def step_rnnlab() -> None:
        net.zero_grad(set_to_none=True)
        preds = net(x, lengths).predictions
        p, t = valid_pairs(spec, preds, y, lengths)
        loss_fn(spec, p, t).backward()

    def step_plain() -> None:
        plain.zero_grad(set_to_none=True)
        F.mse_loss(plain(x), y).backward()

    add("forward + loss + backward", step_rnnlab, step_plain, 2 if big else 30, steps)
    with torch.no_grad():
        preds = net(x, lengths).predictions
    leaf = preds.detach().requires_grad_(True)

    def loss_rnnlab() -> None:
        p, t = valid_pairs(spec, leaf, y, lengths)
        loss_fn(spec, p, t).backward()

    def loss_plain() -> None:
        F.mse_loss(leaf, y.reshape(leaf.shape)).backward()

    add("  of which valid_pairs + loss", loss_rnnlab, loss_plain, 300, steps)
    p_valid, t_valid = valid_pairs(spec, preds, y, lengths)
    loss = loss_fn(spec, p_valid, t_valid)
    add(
        "EpochMetrics.update (torchmetrics)",
        lambda: module.train_metrics.update(loss, p_valid, t_valid),
        None,
        300,
        steps + val_steps,
    )
    step_rnnlab()
    step_plain()
    optimizer = torch.optim.Adam(net.parameters(), lr=problem.lr)

    def clip_rnnlab() -> None:
        module.configure_gradient_clipping(optimizer)
        if len(module._grad_norms) > 1000:
            module._grad_norms.clear()
            module._clipped.clear()

    add(
        "gradient norm + clip",
        clip_rnnlab,
        lambda: torch.nn.utils.clip_grad_norm_(plain.parameters(), problem.clip),
        300,
        steps,
    )
    add("float(loss) per step", lambda: float(loss.detach()), None, 1000, steps)
    padding = PaddingFraction()
    add(
        "PaddingFraction.on_train_batch_end",
        lambda: padding.on_train_batch_end(None, None, None, batch, 0),  # type: ignore[arg-type]
        None,
        1000,
        steps,
    )
    module._grad_norms[:] = module._grad_norms[:steps]
    module._clipped[:] = module._clipped[:steps]

    def epoch_summary() -> None:
        module.train_metrics.compute("train")
        module.val_metrics.update(loss, p_valid, t_valid)
        module.val_metrics.compute("val")
        module._gradient_summary()

    add("epoch-end metric compute", epoch_summary, None, 20, 1)

    # The module's epoch-end hook inside a real fit: it can only run under a Trainer, because
    # self.log_dict needs the Trainer's result collection.
    hooked = SequenceModule(cfg, spec, build_model(cfg.model, spec))
    spans: dict[str, list[float]] = {"hook": [], "log_dict": []}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                spans[name].append(time.process_time() - t)

        return wrapper

    hooked.on_validation_epoch_end = timed("hook", hooked.on_validation_epoch_end)  # type: ignore[method-assign]
    hooked.log_dict = timed("log_dict", hooked.log_dict)  # type: ignore[method-assign]
    pl.Trainer(
        accelerator="cpu",
        max_epochs=6,
        limit_train_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(store / "breakdown"),
    ).fit(hooked, datamodule=dm)
    rows.append(("on_validation_epoch_end (whole hook)", median(spans["hook"][1:]), None, 1))
    rows.append(("  of which self.log_dict", median(spans["log_dict"][1:]), None, 1))

    # A real Trainer's checkpoint of this module: what ModelCheckpoint writes (best and last).
    trainer = pl.Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(store / "breakdown"),
    )
    trainer.fit(module, datamodule=dm)
    ckpt = store / "breakdown" / "x.ckpt"
    add(
        "Trainer.save_checkpoint (wall)",
        lambda: trainer.save_checkpoint(ckpt),
        None,
        5,
        2,
        rounds=5,
        clock=time.perf_counter,
    )
    add(
        "  weights only, for comparison (wall)",
        lambda: trainer.save_checkpoint(ckpt, weights_only=True),
        None,
        5,
        2,
        rounds=5,
        clock=time.perf_counter,
    )
    handle = runs.start_run(cfg.tracking.uri, cfg.tracking.experiment, "breakdown")
    client = runs.client(cfg.tracking.uri)
    metrics = [Metric(f"m{i}", 1.0, 0, 0) for i in range(10)]
    add(
        "MLflow log_batch to SQLite (wall)",
        lambda: client.log_batch(handle.run_id, metrics=metrics),
        None,
        10,
        2,
        rounds=3,
        clock=time.perf_counter,
    )
    runs.end_run(handle, "completed")

    print(f"\n== per-piece costs, {work.name}: {steps} train + {val_steps} val batches per epoch")
    print(f"{'piece':<38} {'rnnlab ms':>10} {'plain ms':>9} {'x/epoch':>8} {'extra ms/epoch':>15}")
    for name, r, b, k in rows:
        extra = (r - (b or 0.0)) * k * 1000
        plain_ms = f"{1000 * b:>9.3f}" if b is not None else f"{'-':>9}"
        print(f"{name:<38} {1000 * r:>10.3f} {plain_ms} {k:>8} {extra:>15.2f}")


# (start time, generation, seconds) of each garbage collection, when --gc is on.
gc_pauses: list[tuple[float, int, float]] = []
_gc_started = [0.0]


def _record_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        gc_pauses.append((_gc_started[0], info["generation"], time.perf_counter() - _gc_started[0]))


def report_gc(way: str, clock: Clock, timing: Timing) -> None:
    """Collections during one run's training (from its first step): count and time per
    generation, beside the run's first-epoch time."""
    first = clock.first_step or 0.0
    during = [(g, t) for start, g, t in gc_pauses if start >= first]
    gens = ", ".join(
        f"gen{g} {sum(1 for x, _ in during if x == g)}x "
        f"{1000 * sum(t for x, t in during if x == g):.0f} ms"
        for g in range(3)
    )
    print(f"gc {LABELS[way].strip():<20} {gens}; first epoch {timing.epoch_s[0]:.3f} s")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.gc:
        import gc

        gc.callbacks.append(_record_gc)
    args.threads = args.threads or torch.get_num_threads()
    # Same CPU settings for every way; rnnlab's fit() sets the same two again from its config.
    torch.set_flush_denormal(True)
    torch.set_num_threads(args.threads)
    quiet_lightning()
    load_before = os.getloadavg()
    started = dt.datetime.now().astimezone()
    print(
        f"rnnlab overhead benchmark, {started:%Y-%m-%d %H:%M %Z}; {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, {args.threads} torch threads; torch {torch.__version__}, "
        f"pytorch-lightning {pl.__version__}; python {platform.python_version()}"
    )
    device = torch.cuda.get_device_name(0) if args.accelerator == "gpu" else "CPU"
    print(f"device: {device}; precision {args.precision} in all ways")
    print(
        f"epochs {args.epochs} x repeats {args.repeats} per way; imports took {IMPORT_SECONDS:.2f} s; "
        f"load average before {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}"
    )
    all_met = True
    with tempfile.TemporaryDirectory(prefix="rnnlab-overhead-") as tmp:
        store = Path(tmp)
        works = workloads(args.quick)
        for name in args.workloads:
            work = works[name]
            hardware = hardware_overrides(args.threads, args.accelerator, args.precision)
            problem = build_problem(work, args.epochs, hardware, store)
            if args.profile:
                profile_way(args.profile, problem, work, args, store)
                continue
            if args.breakdown:
                breakdown(problem, work, args, store)
                continue
            ways = WAYS + (ABLATIONS if args.ablations else ())
            results: dict[str, list[Timing]] = {w: [] for w in ways}
            for rep in range(args.repeats):
                order = ways[rep % len(ways) :] + ways[: rep % len(ways)]
                for way in order:
                    clock = Clock(time.perf_counter())
                    gc_pauses.clear()
                    results[way].append(run_way(way, problem, work, args.epochs, clock, store))
                    if args.gc:
                        report_gc(way, clock, results[way][-1])
            all_met &= report_workload(work, results, realistic=name == "realistic")
    load_after = os.getloadavg()
    print(
        f"\nload average after {load_after[0]:.2f} {load_after[1]:.2f} {load_after[2]:.2f}; "
        f"wall {(dt.datetime.now().astimezone() - started).total_seconds():.0f} s"
    )
    if not (args.profile or args.breakdown):
        print("all targets met" if all_met else "some targets MISSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
