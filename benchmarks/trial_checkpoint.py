"""What a sweep trial's epoch-end checkpoint costs, and what carrying its best file adds.

Every epoch a trial hands Tune a checkpoint (sweep/trial.py: `write_trial_checkpoint`): the
trainer's state, plus, when the best epoch is an earlier one, a copy of `best.ckpt`, so that
a retry keeps testing and logging the real best. This times, inside one `fit` per model, the
two writes at each epoch end (and the epoch's own time up to them): the trial checkpoint (the baseline, written before this change
too) and the best copy (written in the epochs that do not improve), and prints their ratio.

    python benchmarks/trial_checkpoint.py            # ~1 minute: default model, then a big one
    python benchmarks/trial_checkpoint.py --quick    # smoke: one model, 2 short epochs
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from pytorch_lightning.callbacks import Checkpoint

from rnnlab.composition import absolute_paths, compose
from rnnlab.config import validate_run_config
from rnnlab.sweep.trial import CKPT_FILE
from rnnlab.training.checkpoint_io import copy_checkpoint
from rnnlab.training.fit import fit
from rnnlab.training.model_checkpoint import BEST_FILE

MODELS = {
    "default model (train defaults)": [],
    "2-layer LSTM, hidden 256": ["model.num_layers=2", "model.hidden_size=256"],
}


class _Timer(Checkpoint):
    """Runs after ModelCheckpoint, as TuneReporter does; times both writes each epoch."""

    def __init__(self) -> None:
        self.trial_ms: list[float] = []
        self.best_ms: list[float] = []
        self.size = 0
        self.epoch_ms: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.epoch_ms.append((time.perf_counter() - self._start) * 1e3)
        best = trainer.checkpoint_callback.best_model_path
        with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as tmp:
            t0 = time.perf_counter()
            trainer.save_checkpoint(Path(tmp) / CKPT_FILE)
            t1 = time.perf_counter()
            copy_checkpoint(trainer.strategy.checkpoint_io, best, Path(tmp) / BEST_FILE)
            t2 = time.perf_counter()
            self.size = (Path(tmp) / CKPT_FILE).stat().st_size
        self.trial_ms.append((t1 - t0) * 1e3)
        self.best_ms.append((t2 - t1) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    epochs = 2 if args.quick else args.epochs
    models = dict(list(MODELS.items())[:1]) if args.quick else MODELS
    for name, overrides in models.items():
        size = ["task.train_size=128", "task.seq_len=20"] if args.quick else ["task.train_size=512"]
        raw = compose("train", [f"train.max_epochs={epochs}", *size, *overrides])
        timer = _Timer()
        with tempfile.TemporaryDirectory(prefix="rnnlab-bench-") as folder:
            fit(
                validate_run_config(absolute_paths(raw, base=Path(folder))),
                extra_callbacks=[timer],
                run_test=False,
            )
        trial, best = statistics.median(timer.trial_ms), statistics.median(timer.best_ms)
        epoch = statistics.median(timer.epoch_ms)
        print(
            f"{name}: checkpoint {timer.size / 1e6:.2f} MB; epoch {epoch:.0f} ms, trial "
            f"checkpoint {trial:.2f} ms, best copy {best:.2f} ms (medians of {epochs} epochs); "
            f"best copy / trial checkpoint = {best / trial:.2f}x, / epoch = {best / epoch:.3f}x"
        )


if __name__ == "__main__":
    main()
