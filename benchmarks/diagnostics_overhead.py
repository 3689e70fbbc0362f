"""What diagnostics cost: the same training with `diagnostics.*` on (sweep defaults) and off.

Both ways run `rnnlab.training.tracked.train_tracked(cfg)` in this process, with MLflow
logging to a temporary SQLite store, on the default sweep's trial shape (adding problem at
T=100, 2000 sequences, batch 50, hidden 64), for a tanh RNN and an LSTM. Runs alternate
(off, on, on, off, ...) so machine noise hits both. Two figures per model:

  epoch   median time of a training epoch (incl. validation and every callback's epoch
          work: gradient-flow summaries, spectra, clipping quantiles, MLflow batches)
  run     wall time of the whole `train_tracked` call, incl. drawing and storing the plots

and a micro-benchmark of the hooks themselves: one forward+backward step with the gradient
flow hooks active (a sampled step) against the same step without (every other step), so the
amortised cost at `every_n_steps` is (sampled / plain - 1) / every_n_steps.

    python benchmarks/diagnostics_overhead.py              # ~5 minutes on 2 busy cores
    python benchmarks/diagnostics_overhead.py --quick      # smoke: 400 sequences, 2 epochs
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from rnnlab.cli import load_run_config
from rnnlab.diagnostics.gradient_flow import GradientFlow
from rnnlab.training.fit import build_datamodule, configure_torch, quiet_lightning
from rnnlab.training.module import SequenceModule
from rnnlab.training.tracked import train_tracked

TARGET_RATIO = 1.10
DIAGNOSTICS = ("gradient_flow", "clipping", "spectra", "divergence", "plots")


class EpochTimer(pl.Callback):
    """Wall and CPU time of each training epoch; added last so it includes the others' work.

    CPU time (`time.process_time`, all threads of this process) is what the diagnostics add
    to the work; on a shared, loaded machine it is far steadier than wall time, which also
    counts the time other processes held the cores.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._start = (0.0, 0.0)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.wall.append(time.perf_counter() - self._start[0])
        self.cpu.append(time.process_time() - self._start[1])


def overrides(model: str, on: bool, quick: bool, threads: int, store: Path) -> list[str]:
    train_size, epochs = (400, 2) if quick else (2000, 3)
    return [
        f"model={model}",
        "model.hidden_size=64",
        "task=adding",
        "task.seq_len=100",
        f"task.train_size={train_size}",
        "task.val_size=500",
        "task.test_size=100",
        "train.batch_size=50",
        f"train.max_epochs={epochs}",
        "train.early_stopping.enabled=false",
        "train.keep_checkpoints=none",
        f"hardware.threads={threads}",
        f"tracking.uri=sqlite:///{store / 'mlflow.db'}",
        "tracking.experiment=diagnostics-overhead",
        "diagnostics.every_n_steps=50",
        *(f"diagnostics.{d}={str(on).lower()}" for d in DIAGNOSTICS),
    ]


@dataclass
class RunTimes:
    epoch_wall: list[float]
    epoch_cpu: list[float]
    run_wall: float
    run_cpu: float


def one_run(cfg: Any) -> RunTimes:
    """Per-epoch and whole-run times of one tracked training run."""
    timer = EpochTimer()
    wall, cpu = time.perf_counter(), time.process_time()
    train_tracked(cfg, extra_callbacks=[timer], run_test=False)
    return RunTimes(timer.wall, timer.cpu, time.perf_counter() - wall, time.process_time() - cpu)


IN_EPOCH = ("on_train_batch_start", "on_train_batch_end", "on_before_optimizer_step")
EPOCH_END = ("on_train_epoch_end",)
ONCE = ("setup", "on_fit_start", "on_fit_end")


@contextlib.contextmanager
def callback_cpu(totals: dict[str, float]) -> Iterator[None]:
    """Accumulate the CPU time spent inside the diagnostic callbacks' hooks, by kind of hook."""
    from rnnlab.diagnostics.clipping import ClippingTelemetry
    from rnnlab.diagnostics.divergence import DivergenceProbe
    from rnnlab.diagnostics.plots import DiagnosticPlots
    from rnnlab.diagnostics.sink import EpochLog
    from rnnlab.diagnostics.spectra import RecurrentSpectra

    classes = (GradientFlow, ClippingTelemetry, RecurrentSpectra, DivergenceProbe, EpochLog)
    classes += (DiagnosticPlots,)
    saved = []
    for cls in classes:
        for name, kind in [
            *((h, "per step") for h in IN_EPOCH),
            *((h, "epoch end") for h in EPOCH_END),
            *((h, "once per run") for h in ONCE),
        ]:
            if name not in cls.__dict__:
                continue
            original = cls.__dict__[name]

            def timed(*args: Any, _f: Any = original, _k: str = kind, **kwargs: Any) -> Any:
                t0 = time.process_time()
                try:
                    return _f(*args, **kwargs)
                finally:
                    totals[_k] = totals.get(_k, 0.0) + time.process_time() - t0

            saved.append((cls, name, original))
            setattr(cls, name, timed)
    try:
        yield
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)


def hook_cost(cfg: Any, steps: int) -> tuple[float, float]:
    """Seconds per forward+backward step without and with the gradient-flow hooks."""
    dm = build_datamodule(cfg)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    pl.seed_everything(0, verbose=False)
    from rnnlab.models import build_model

    module = SequenceModule(cfg, dm.spec, build_model(cfg.model, dm.spec))
    flow = GradientFlow(every_n_steps=1)

    def step(hooked: bool) -> float:
        class FakeTrainer:
            global_step = 0
            current_epoch = 0

        t0 = time.process_time()
        if hooked:
            flow.on_train_batch_start(FakeTrainer(), module, batch, 0)  # type: ignore[arg-type]
        module.zero_grad(set_to_none=True)
        loss = module._shared_step(batch, module.train_metrics)
        loss.backward()
        if hooked:
            flow.on_before_optimizer_step(FakeTrainer(), module, None)  # type: ignore[arg-type]
            flow.on_train_batch_end(FakeTrainer(), module, None, batch, 0)  # type: ignore[arg-type]
            flow._epoch.clear()
        return time.process_time() - t0

    plain, hooked = [], []
    for _ in range(3):  # warm-up
        step(False)
        step(True)
    for i in range(steps):
        for h in (i % 2 == 0, i % 2 == 1):
            (hooked if h else plain).append(step(h))
    return statistics.median(plain), statistics.median(hooked)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--repeats", type=int, default=None, help="runs per way and model")
    parser.add_argument("--models", nargs="+", default=["rnn", "lstm"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 4)
    quiet_lightning()
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {args.threads} thread(s) per run")
    rows = []
    with tempfile.TemporaryDirectory(prefix="rnnlab-diag-bench-") as tmp:
        store = Path(tmp)
        for model in args.models:
            cfgs = {
                on: load_run_config("train", overrides(model, on, args.quick, args.threads, store))
                for on in (False, True)
            }
            configure_torch(cfgs[False])
            if not rows:  # untimed: creates the MLflow store, imports matplotlib
                for on in (False, True):
                    one_run(cfgs[on])
            times: dict[bool, list[RunTimes]] = {False: [], True: []}
            for r in range(repeats):
                for on in (False, True) if r % 2 == 0 else (True, False):
                    times[on].append(one_run(cfgs[on]))
            inside: dict[str, float] = {}
            with callback_cpu(inside):
                instrumented = one_run(cfgs[True])
            epochs = len(instrumented.epoch_cpu)
            inside = {k: v / (1 if k == "once per run" else epochs) for k, v in inside.items()}
            plain, hooked = hook_cost(cfgs[True], steps=6 if args.quick else 30)
            every = cfgs[True].diagnostics.every_n_steps
            rows.append((model, times, plain, hooked, every, inside))
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print()

    def med(values: list[float]) -> float:
        return statistics.median(values)

    header = (
        f"{'model':6} {'':10} {'epoch off':>9} {'epoch on':>9} {'ratio':>6}"
        f" {'run off':>8} {'run on':>8} {'ratio':>6}"
    )
    print(header)
    worst = 0.0
    for model, times, plain, hooked, every, inside in rows:
        for kind in ("cpu", "wall"):
            epoch = {
                on: med([e for t in times[on] for e in getattr(t, f"epoch_{kind}")]) for on in times
            }
            run = {on: med([getattr(t, f"run_{kind}") for t in times[on]]) for on in times}
            e_ratio, r_ratio = epoch[True] / epoch[False], run[True] / run[False]
            if kind == "cpu":
                worst = max(worst, e_ratio)
            print(
                f"{model:6} {kind + ' time':10} {epoch[False]:8.3f}s {epoch[True]:8.3f}s"
                f" {e_ratio:6.3f} {run[False]:7.2f}s {run[True]:7.2f}s {r_ratio:6.3f}"
            )
        amortised = 1 + (hooked / plain - 1) / every
        print(
            f"{model:6} hooks: step {plain * 1e3:.1f} ms CPU plain, {hooked * 1e3:.1f} ms sampled"
            f" (x{hooked / plain:.2f}); amortised at every_n_steps={every}: x{amortised:.4f}"
        )
        epoch_off = med([e for t in times[False] for e in t.epoch_cpu])
        per_epoch = inside.get("per step", 0.0) + inside.get("epoch end", 0.0)
        print(
            f"{model:6} inside the callbacks (CPU): {inside.get('per step', 0.0) * 1e3:.0f} ms per"
            f" epoch in batch hooks + {inside.get('epoch end', 0.0) * 1e3:.0f} ms at epoch end"
            f" = {per_epoch / epoch_off:.1%} of an epoch; {inside.get('once per run', 0.0):.2f} s"
            f" once per run (spectra at init, plots)"
        )
    verdict = "within" if worst <= TARGET_RATIO else "ABOVE"
    print(
        f"\nworst epoch CPU-time ratio on/off {worst:.3f}: {verdict} the target {TARGET_RATIO:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
