"""Lightning's ModelCheckpoint, made to keep its best score when a resumed run moves folder,
and to cost little in the epochs where it has nothing to save.

A sweep trial that Tune retries after a crash, or resumes with its sweep, trains again in a
fresh temporary folder, possibly on another node. Lightning's ModelCheckpoint restores its
scores only when the checkpoint folder is unchanged; otherwise it keeps nothing but the old
path of the best file. The retry's first epoch then becomes "best" whatever it scores, and the
trial tests and logs that epoch instead of its real best. The trial carries its best file into
the new folder (sweep/trial.py); this class re-roots the restored paths so that the scores
come back with it.

The per-epoch bookkeeping was the largest cost rnnlab added to a small model's epoch
(docs/benchmarks.md, parity workload): a deep copy of every logged metric, a `last.ckpt`
link removed and made again though its target had not changed, and a check of the per-step
save triggers after every batch though rnnlab saves per epoch. The overrides below do the
same work without those; what is saved, and when, is Lightning's.
"""

from __future__ import annotations

import copy
import os
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import Tensor

BEST_CHECKPOINT = "best"  # the file name ModelCheckpoint gives the best epoch, without .ckpt
BEST_FILE = BEST_CHECKPOINT + ModelCheckpoint.FILE_EXTENSION
_PATH_KEYS = ("best_model_path", "kth_best_model_path", "last_model_path")


def _moved(path: str, old: str, new: str) -> str:
    """`path` re-rooted from folder `old` to folder `new`; other paths unchanged."""
    if not path:
        return path
    try:
        inside = os.path.commonpath([os.path.abspath(path), os.path.abspath(old)]) == (
            os.path.abspath(old)
        )
    except ValueError:  # different drives
        return path
    return os.path.join(new, os.path.relpath(path, old)) if inside else path


def relocated_state(state: dict[str, Any], new_dir: str) -> dict[str, Any]:
    """ModelCheckpoint's state dict as if it had been saved with `dirpath=new_dir`."""
    old_dir = state.get("dirpath")
    if not old_dir or old_dir == new_dir:
        return state
    moved = dict(state, dirpath=new_dir)
    for key in _PATH_KEYS:
        if isinstance(state.get(key), str):
            moved[key] = _moved(state[key], old_dir, new_dir)
    if isinstance(state.get("best_k_models"), dict):
        moved["best_k_models"] = {
            _moved(p, old_dir, new_dir): score for p, score in state["best_k_models"].items()
        }
    return moved


def run_model_checkpoint(trainer: pl.Trainer) -> ModelCheckpoint | None:
    """The run's ModelCheckpoint (`fit` adds at most one), looked up among all checkpoint
    callbacks: `trainer.checkpoint_callback` is merely the first of them, and a sweep
    trial's TuneReporter is one too."""
    return next(
        (cb for cb in trainer.checkpoint_callbacks if isinstance(cb, ModelCheckpoint)), None
    )


class RelocatableModelCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that restores its scores from a run saved in another folder, when the
    best file has been brought along to the same name in this one."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if self.dirpath is not None:
            moved = relocated_state(state_dict, str(self.dirpath))
            best = moved.get("best_model_path")
            # Without its file a restored score would stop every later epoch from being saved.
            if moved is not state_dict and (not best or Path(best).exists()):
                state_dict = moved
        super().load_state_dict(state_dict)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # A resumed trial's folder already holds the best file it brought along, on purpose.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Checkpoint directory .* is not empty")
            super().setup(trainer, pl_module, stage)
        # Without a step or time trigger Lightning's per-batch checks always end in "skip";
        # a hook that is not callable is not dispatched at all (training/callback_hooks.py).
        if (
            pl_module.automatic_optimization
            and self._every_n_train_steps < 1
            and self._train_time_interval is None
        ):
            self.on_train_batch_end = None  # type: ignore[method-assign,assignment]
        else:
            vars(self).pop("on_train_batch_end", None)

    def _monitor_candidates(self, trainer: pl.Trainer) -> dict[str, Tensor]:
        # As Lightning's, with each metric tensor cloned instead of deep-copied: the values
        # must not change under the scores kept from them, and `Tensor.__deepcopy__` costs
        # tens of microseconds a scalar.
        candidates = {
            key: value.detach().clone() if isinstance(value, Tensor) else copy.deepcopy(value)
            for key, value in trainer.callback_metrics.items()
        }
        epoch = candidates.get("epoch")
        candidates["epoch"] = (
            epoch.int() if isinstance(epoch, Tensor) else torch.tensor(trainer.current_epoch)
        )
        step = candidates.get("step")
        candidates["step"] = (
            step.int() if isinstance(step, Tensor) else torch.tensor(trainer.global_step)
        )
        return candidates

    @staticmethod
    def _link_checkpoint(trainer: pl.Trainer, filepath: str, linkpath: str) -> None:
        # `save_last="link"` re-links last.ckpt every epoch, mostly to the same best file.
        target = os.path.relpath(filepath, os.path.dirname(linkpath))
        if trainer.is_global_zero and os.path.islink(linkpath) and os.readlink(linkpath) == target:
            trainer.strategy.barrier()
            return
        ModelCheckpoint._link_checkpoint(trainer, filepath, linkpath)
