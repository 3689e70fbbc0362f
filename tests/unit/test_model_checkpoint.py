"""ModelCheckpoint's restored state re-rooted into the folder a resumed run trains in."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from rnnlab.training.model_checkpoint import RelocatableModelCheckpoint, relocated_state


def _state(old: Path) -> dict:
    return {
        "monitor": "val/loss",
        "best_model_score": torch.tensor(0.25),
        "best_model_path": str(old / "best.ckpt"),
        "current_score": torch.tensor(0.4),
        "dirpath": str(old),
        "best_k_models": {str(old / "best.ckpt"): torch.tensor(0.25)},
        "kth_best_model_path": str(old / "best.ckpt"),
        "kth_value": torch.tensor(0.25),
        "last_model_path": str(old / "last.ckpt"),
    }


def test_paths_inside_the_old_folder_move_and_others_stay(tmp_path: Path) -> None:
    old, new = tmp_path / "a" / "ckpt", tmp_path / "b"
    state = _state(old)
    state["last_model_path"] = "/elsewhere/last.ckpt"
    moved = relocated_state(state, str(new))
    assert moved["dirpath"] == str(new)
    assert moved["best_model_path"] == str(new / "best.ckpt")
    assert moved["kth_best_model_path"] == str(new / "best.ckpt")
    assert list(moved["best_k_models"]) == [str(new / "best.ckpt")]
    assert moved["last_model_path"] == "/elsewhere/last.ckpt"
    assert state["dirpath"] == str(old)  # the input is left as it was
    # A sibling folder whose name starts like the old one is not inside it.
    assert (
        relocated_state(dict(state, best_model_path=f"{old}2/best.ckpt"), str(new))[
            "best_model_path"
        ]
        == f"{old}2/best.ckpt"
    )
    assert relocated_state(state, str(old)) is state


def test_scores_come_back_only_with_the_best_file(tmp_path: Path) -> None:
    new = tmp_path / "new"
    new.mkdir()
    with_file = RelocatableModelCheckpoint(dirpath=new, filename="best", monitor="val/loss")
    (new / "best.ckpt").write_bytes(b"")
    with_file.load_state_dict(_state(tmp_path / "old"))
    assert float(with_file.best_model_score) == 0.25
    assert with_file.best_model_path == str(new / "best.ckpt")

    (new / "best.ckpt").unlink()
    without = RelocatableModelCheckpoint(dirpath=new, filename="best", monitor="val/loss")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's own "dirpath has changed" warning
        without.load_state_dict(_state(tmp_path / "old"))
    assert without.best_model_score is None  # as plain ModelCheckpoint: nothing to keep
