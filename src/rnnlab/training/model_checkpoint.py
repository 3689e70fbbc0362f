"""Lightning's ModelCheckpoint, made to keep its best score when a resumed run moves folder.

A sweep trial that Tune retries after a crash, or resumes with its sweep, trains again in a
fresh temporary folder, possibly on another node. Lightning's ModelCheckpoint restores its
scores only when the checkpoint folder is unchanged; otherwise it keeps nothing but the old
path of the best file. The retry's first epoch then becomes "best" whatever it scores, and the
trial tests and logs that epoch instead of its real best. The trial carries its best file into
the new folder (sweep/trial.py); this class re-roots the restored paths so that the scores
come back with it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

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
