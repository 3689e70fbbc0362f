"""Checkpoints held in memory until teardown: what is held, what is written at once, and when."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import torch
from pytorch_lightning.utilities.parsing import AttributeDict

from rnnlab.training.checkpoint_io import WriteAtTeardownCheckpointIO, detached_copy


def _checkpoint(weight: torch.Tensor) -> dict:
    return {
        "epoch": 3,
        "state_dict": OrderedDict(w=weight),
        "optimizer_states": [{"state": {0: {"exp_avg": weight * 2}}, "param_groups": []}],
        "callbacks": {"ModelCheckpoint": {"best_k_models": {"a.ckpt": torch.tensor(0.5)}}},
        "hyper_parameters": AttributeDict(config={"model": {"hidden_size": 8}}),
    }


def test_a_detached_copy_does_not_follow_later_training() -> None:
    weight = torch.ones(3)
    original = _checkpoint(weight)
    copy = detached_copy(original)
    weight.add_(1.0)  # an optimizer step, in place
    original["callbacks"]["ModelCheckpoint"]["best_k_models"]["b.ckpt"] = torch.tensor(0.1)
    assert torch.equal(copy["state_dict"]["w"], torch.ones(3))
    assert list(copy["callbacks"]["ModelCheckpoint"]["best_k_models"]) == ["a.ckpt"]
    assert type(copy["state_dict"]) is OrderedDict
    assert type(copy["hyper_parameters"]) is AttributeDict
    assert copy["hyper_parameters"].config == {"model": {"hidden_size": 8}}


def test_the_named_checkpoint_waits_for_teardown_and_holds_the_state_when_saved(
    tmp_path: Path,
) -> None:
    io = WriteAtTeardownCheckpointIO(tmp_path, ["best.ckpt"], max_bytes=2**20)
    weight = torch.ones(3)
    io.save_checkpoint(_checkpoint(weight), tmp_path / "best.ckpt")
    weight.add_(1.0)
    assert not (tmp_path / "best.ckpt").exists()
    assert io.pending == [str(tmp_path / "best.ckpt")]
    io.teardown()
    assert io.pending == []
    saved = torch.load(tmp_path / "best.ckpt", weights_only=False)
    assert torch.equal(saved["state_dict"]["w"], torch.ones(3))
    assert saved["epoch"] == 3


def test_a_newer_save_of_the_same_file_replaces_the_held_one(tmp_path: Path) -> None:
    io = WriteAtTeardownCheckpointIO(tmp_path, ["best.ckpt"], max_bytes=2**20)
    io.save_checkpoint(_checkpoint(torch.ones(3)), tmp_path / "best.ckpt")
    io.save_checkpoint(_checkpoint(torch.full((3,), 7.0)), tmp_path / "best.ckpt")
    io.teardown()
    saved = torch.load(tmp_path / "best.ckpt", weights_only=False)
    assert torch.equal(saved["state_dict"]["w"], torch.full((3,), 7.0))


def test_other_files_and_large_checkpoints_are_written_at_once(tmp_path: Path) -> None:
    io = WriteAtTeardownCheckpointIO(tmp_path, ["best.ckpt"], max_bytes=64)
    io.save_checkpoint(_checkpoint(torch.ones(3)), tmp_path / "trial.ckpt")  # not named
    assert (tmp_path / "trial.ckpt").exists()
    io.save_checkpoint(_checkpoint(torch.ones(100)), tmp_path / "best.ckpt")  # 1200 bytes > 64
    assert (tmp_path / "best.ckpt").exists()
    assert io.pending == []


def test_loading_writes_what_is_held_first(tmp_path: Path) -> None:
    io = WriteAtTeardownCheckpointIO(tmp_path, ["best.ckpt"], max_bytes=2**20)
    io.save_checkpoint(_checkpoint(torch.ones(3)), tmp_path / "best.ckpt")
    loaded = io.load_checkpoint(tmp_path / "best.ckpt", weights_only=False)
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(3))


def test_a_removed_checkpoint_is_never_written(tmp_path: Path) -> None:
    io = WriteAtTeardownCheckpointIO(tmp_path, ["best.ckpt"], max_bytes=2**20)
    io.save_checkpoint(_checkpoint(torch.ones(3)), tmp_path / "best.ckpt")
    io.remove_checkpoint(tmp_path / "best.ckpt")
    io.teardown()
    assert not (tmp_path / "best.ckpt").exists()


def test_a_zero_limit_writes_every_checkpoint_at_once(tmp_path: Path) -> None:
    io = WriteAtTeardownCheckpointIO(tmp_path, ["best.ckpt"], max_bytes=0)
    io.save_checkpoint(_checkpoint(torch.ones(3)), tmp_path / "best.ckpt")
    assert (tmp_path / "best.ckpt").exists()
