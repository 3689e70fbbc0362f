"""`fit`'s best and last checkpoints, held in memory until training ends, are the ones a
write at every improving epoch would have left."""

from __future__ import annotations

from pathlib import Path

import torch
from pytorch_lightning.callbacks import Callback

from rnnlab.composition import absolute_paths, compose
from rnnlab.config import validate_run_config
from rnnlab.training.checkpoint_io import WriteAtTeardownCheckpointIO
from rnnlab.training.fit import fit


class _Weights(Callback):
    """The module's weights at the end of every epoch, and whether the files existed then."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.by_epoch: list[dict[str, torch.Tensor]] = []
        self.files_during_training: set[str] = set()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.by_epoch.append({k: v.clone() for k, v in pl_module.state_dict().items()})
        self.files_during_training |= {p.name for p in self.folder.glob("*.ckpt") if p.exists()}


def _fit(tiny, folder: Path, *extra: str):
    cfg = validate_run_config(
        absolute_paths(
            compose(
                "train",
                [*tiny, "train.max_epochs=4", "train.early_stopping.enabled=false", *extra],
            ),
            base=folder,
        )
    )
    probe = _Weights(folder / "ckpt")
    result = fit(cfg, checkpoint_dir=folder / "ckpt", extra_callbacks=[probe], run_test=False)
    return result, probe


def test_checkpoints_held_until_the_end_match_checkpoints_written_at_once(
    tiny, tmp_path: Path
) -> None:
    held, probe = _fit(tiny, tmp_path / "held")
    written, _ = _fit(tiny, tmp_path / "written", "train.checkpoints_in_memory_mb=0")
    assert held.outcome == written.outcome == "completed"
    assert probe.files_during_training == set()  # nothing was written while training ran
    for name in ("best_checkpoint", "last_checkpoint"):
        a = torch.load(getattr(held, name), weights_only=False)
        b = torch.load(getattr(written, name), weights_only=False)
        assert a["epoch"] == b["epoch"] and a["global_step"] == b["global_step"]
        assert a["state_dict"].keys() == b["state_dict"].keys()
        for key in a["state_dict"]:
            assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    # The best file holds the weights of its epoch, not those of the end of training.
    best = torch.load(held.best_checkpoint, weights_only=False)
    at_best = probe.by_epoch[best["epoch"]]
    for key, value in best["state_dict"].items():
        assert torch.equal(value, at_best[key]), key


class _PoisonAtEpoch(Callback):
    """Sets every weight to NaN when epoch `epoch` starts: the next loss is NaN."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            with torch.no_grad():
                for p in pl_module.parameters():
                    p.fill_(float("nan"))


def test_a_run_that_diverges_still_leaves_the_checkpoints_it_held(tiny, tmp_path: Path) -> None:
    cfg = validate_run_config(
        absolute_paths(
            compose("train", [*tiny, "train.max_epochs=4", "train.early_stopping.enabled=false"]),
            base=tmp_path,
        )
    )
    folder = tmp_path / "ckpt"
    result = fit(cfg, checkpoint_dir=folder, extra_callbacks=[_PoisonAtEpoch(2)], run_test=False)
    assert result.outcome == "diverged"
    assert result.best_checkpoint is not None and result.last_checkpoint is not None
    best = torch.load(result.best_checkpoint, weights_only=False)
    assert best["epoch"] in (0, 1)
    assert all(torch.isfinite(v).all() for v in best["state_dict"].values())


def test_fit_holds_checkpoints_only_when_a_limit_is_set(tiny, tmp_path: Path) -> None:
    from rnnlab.training.fit import checkpoint_plugins

    def plugins(*extra: str):
        cfg = validate_run_config(absolute_paths(compose("train", [*tiny, *extra]), base=tmp_path))
        return checkpoint_plugins(cfg, tmp_path)

    (held,) = plugins()
    assert isinstance(held, WriteAtTeardownCheckpointIO)
    assert held.max_bytes == 64 * 2**20  # conf/train.yaml
    assert held.deferred == {str(tmp_path / "best.ckpt"), str(tmp_path / "last.ckpt")}
    assert plugins("train.checkpoints_in_memory_mb=0") == []
    assert plugins("train.keep_checkpoints=none") == []
