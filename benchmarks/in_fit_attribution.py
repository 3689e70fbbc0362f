"""Where rnnlab's epoch time goes beyond bare Lightning's, timed inside real fits.

`overhead.py --breakdown` times each piece on its own, in a hot loop. Inside a training
loop the same pieces cost several times more: a callback hook that takes 4 µs in a hot loop
took about 37 µs after each optimizer step. This script times the pieces in situ instead.
It wraps Lightning's dispatch functions, each callback's hooks, the module's steps and
the checkpoint path with `perf_counter`, and runs bare Lightning and rnnlab (as `overhead.py`
runs them: MLflow on, checkpoints on) alternately in one process. It prints ms per epoch for
each, from the second epoch on. The wrapping adds about a microsecond a call to both ways.

    python benchmarks/in_fit_attribution.py               # parity workload, 4 x 15 epochs
    python benchmarks/in_fit_attribution.py --repeats 8 --epochs 20

Results and the commands that produced them: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import pytorch_lightning.trainer.call as call
import torch
from pytorch_lightning.callbacks import Checkpoint, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loops import _EvaluationLoop, _TrainingEpochLoop
from pytorch_lightning.loops.fetchers import _PrefetchDataFetcher
from pytorch_lightning.trainer.connectors.checkpoint_connector import _CheckpointConnector

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead

from rnnlab.training.checkpoint_io import WriteAtTeardownCheckpointIO
from rnnlab.training.fit import quiet_lightning
from rnnlab.training.module import SequenceModule
from rnnlab.training.objectives import EpochMetrics

SPENT: collections.defaultdict[str, float] = collections.defaultdict(float)


def _timed(owner: Any, name: str, label: str) -> None:
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            SPENT[label] += time.perf_counter() - start

    setattr(owner, name, timed)


def _dispatch_timing_each_callback(
    trainer: pl.Trainer,
    hook_name: str,
    *args: Any,
    monitoring_callbacks: bool | None = None,
    **kwargs: Any,
) -> None:
    """Lightning's `_call_callback_hooks`, with each callback's hook timed on its own."""
    start = time.perf_counter()
    pl_module = trainer.lightning_module
    if pl_module:
        previous, pl_module._current_fx_name = pl_module._current_fx_name, hook_name
    callbacks = trainer.callbacks
    if monitoring_callbacks is not None:
        monitors = [isinstance(cb, EarlyStopping | Checkpoint) for cb in callbacks]
        callbacks = [
            cb for cb, m in zip(callbacks, monitors, strict=True) if m is monitoring_callbacks
        ]
    for callback in callbacks:
        fn = getattr(callback, hook_name)
        if callable(fn):
            began = time.perf_counter()
            with trainer.profiler.profile(f"[Callback]{callback.state_key}.{hook_name}"):
                fn(trainer, trainer.lightning_module, *args, **kwargs)
            SPENT[f"  {type(callback).__name__}.{hook_name}"] += time.perf_counter() - began
    if pl_module:
        pl_module._current_fx_name = previous
    SPENT["callback dispatch (all hooks)"] += time.perf_counter() - start


def instrument() -> None:
    call._call_callback_hooks = _dispatch_timing_each_callback
    for owner, name, label in (
        (SequenceModule, "training_step", "training_step"),
        (overhead.BareModule, "training_step", "training_step"),
        (SequenceModule, "validation_step", "validation_step"),
        (overhead.BareModule, "validation_step", "validation_step"),
        (SequenceModule, "configure_gradient_clipping", "gradient clipping"),
        (pl.LightningModule, "clip_gradients", "gradient clipping"),
        (SequenceModule, "on_validation_epoch_end", "on_validation_epoch_end (module)"),
        (EpochMetrics, "update", "  epoch metrics: update"),
        (EpochMetrics, "compute", "  epoch metrics: compute"),
        (EpochMetrics, "reset", "  epoch metrics: reset"),
        (SequenceModule, "_gradient_summary", "  gradient summary"),
        (_EvaluationLoop, "run", "validation loop"),
        (_TrainingEpochLoop, "advance", "training step loop (one batch)"),
        (_PrefetchDataFetcher, "__next__", "next batch from the loader"),
        (pl.Trainer, "save_checkpoint", "  checkpoint: Trainer.save_checkpoint"),
        (_CheckpointConnector, "dump_checkpoint", "  checkpoint:   dump_checkpoint"),
        (_CheckpointConnector, "_get_loops_state_dict", "  checkpoint:     loops' state"),
        (WriteAtTeardownCheckpointIO, "save_checkpoint", "  checkpoint:   held copy"),
        (ModelCheckpoint, "_save_topk_checkpoint", "  checkpoint: _save_topk_checkpoint"),
        (ModelCheckpoint, "_save_last_checkpoint", "  checkpoint: _save_last_checkpoint"),
    ):
        _timed(owner, name, label)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    quiet_lightning()
    instrument()
    ways: dict[str, Callable[..., overhead.Timing]] = {
        "lightning": overhead.run_lightning,
        "rnnlab": overhead.run_rnnlab,
    }
    totals = {way: collections.defaultdict(float) for way in ways}
    with tempfile.TemporaryDirectory(prefix="rnnlab-attribution-") as tmp:
        store = Path(tmp)
        work = overhead.workloads(False)["parity"]
        hardware = overhead.hardware_overrides(1, "cpu", "32")
        problem = overhead.build_problem(work, args.epochs, hardware, store)
        for _ in range(args.repeats):
            for way, run in ways.items():
                SPENT.clear()
                clock = overhead.Clock(time.perf_counter())
                with overhead.paused_for_startup():
                    timing = run(problem, work, args.epochs, clock, store)
                totals[way]["epoch (wall)"] += sum(timing.epoch_s[1:])
                for label, seconds in SPENT.items():
                    totals[way][label] += seconds
    # Pieces are summed over every epoch; the wall time over all but each run's first.
    per = {"epoch (wall)": args.repeats * (args.epochs - 1)}
    epochs = args.repeats * args.epochs
    print(f"parity workload, {args.repeats} x {args.epochs} epochs per way; ms per epoch")
    print(f"{'piece':<52} {'Lightning':>10} {'rnnlab':>8} {'extra':>8}")
    for label in sorted(set(totals["lightning"]) | set(totals["rnnlab"])):
        a, b = (1000 * totals[w][label] / per.get(label, epochs) for w in ways)
        if max(a, b) >= 0.01:
            print(f"{label:<52} {a:>10.2f} {b:>8.2f} {b - a:>+8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
