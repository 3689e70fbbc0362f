"""Checkpoint files that nothing reads until training ends are written when it ends.

`fit` keeps the best and the last checkpoint of a run in a folder of its own. Nothing opens
them while `trainer.fit` runs: the test stage loads the best one after training, the
tracking layer stores both in MLflow after that, and a sweep trial resumes from the
checkpoint its Tune reporter hands to Tune, written elsewhere and at once. Writing them at
every improving epoch was still the largest cost rnnlab added to a small model's epoch
(a full Lightning checkpoint: pickling, a temporary file, a rename; docs/benchmarks.md).

So a checkpoint up to `max_bytes` is kept as a detached copy in memory and written when the
trainer tears down its strategy, which Lightning does at the end of every `fit`, `validate`
and `test` and after any exception (divergence, Ctrl+C) before it re-raises. A newer save of
the same file replaces the copy, so each file is written once per run. Larger checkpoints
are written as they are made, so memory stays bounded. A process killed outright loses the
unwritten copies, as it loses the temporary folder they would have been written to.
"""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Collection
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.checkpoint_io import CheckpointIO
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

_IMMUTABLE = (str, bytes, int, float, bool, complex, type(None), torch.dtype, torch.device)


def tensor_bytes(obj: Any) -> int:
    """Bytes held by the tensors inside a checkpoint's nested dicts, lists and tuples."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def detached_copy(obj: Any) -> Any:
    """A copy that later training cannot change: tensors cloned, containers rebuilt.

    Lightning's checkpoint dict holds the live parameter and optimizer-state tensors and some
    callbacks' live dicts (ModelCheckpoint's `best_k_models`). `copy.deepcopy` does the same
    job but took as long as pickling the checkpoint; a tensor-aware walk is several times
    cheaper, which is the point of deferring the write.
    """
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, _IMMUTABLE):
        return obj
    if isinstance(obj, dict):
        out = copy.copy(obj)  # keeps the dict's own type (OrderedDict, AttributeDict)
        for key, value in obj.items():
            out[key] = detached_copy(value)
        return out
    if type(obj) is list:
        return [detached_copy(v) for v in obj]
    if type(obj) is tuple:
        return tuple(detached_copy(v) for v in obj)
    return copy.deepcopy(obj)


def _bulk_bytes(checkpoint: dict[str, Any]) -> int:
    """The model's and the optimizers' tensors: a checkpoint's bulk, without walking the rest
    (the config in `hyper_parameters` alone is hundreds of entries)."""
    return tensor_bytes(checkpoint.get("state_dict")) + tensor_bytes(
        checkpoint.get("optimizer_states")
    )


def _copy_file(path: Any, dest: Any) -> bool:
    """Copy a written checkpoint file (a link is followed); False when there is none."""
    if not os.path.isfile(path):
        return False
    shutil.copyfile(path, dest)
    return True


class WriteAtTeardownCheckpointIO(TorchCheckpointIO):
    """Lightning's own torch checkpoint IO, holding the named files until teardown."""

    def __init__(self, folder: Path, names: Collection[str], max_bytes: int) -> None:
        super().__init__()
        self.deferred = {os.path.abspath(Path(folder) / name) for name in names}
        self.max_bytes = max_bytes
        self._pending: dict[str, dict[str, Any]] = {}

    @property
    def pending(self) -> list[str]:
        """Paths saved in memory and not yet written."""
        return sorted(self._pending)

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        key = os.path.abspath(os.fspath(path))
        if (
            storage_options is None
            and key in self.deferred
            and _bulk_bytes(checkpoint) <= self.max_bytes
        ):
            if not self._pending:  # ModelCheckpoint links last.ckpt into the folder at once
                os.makedirs(os.path.dirname(key), exist_ok=True)
            self._pending[key] = detached_copy(checkpoint)
            return
        self._pending.pop(key, None)
        super().save_checkpoint(checkpoint, path, storage_options)

    def load_checkpoint(self, path: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.flush()
        return super().load_checkpoint(path, *args, **kwargs)

    def remove_checkpoint(self, path: Any) -> None:
        self._pending.pop(os.path.abspath(os.fspath(path)), None)
        super().remove_checkpoint(path)

    def copy_to(self, path: Any, dest: Any) -> bool:
        """Write checkpoint `path` to `dest` as it stands now, whether it is held or written."""
        held = self._pending.get(os.path.abspath(os.fspath(path)))
        if held is not None:
            super().save_checkpoint(held, dest)
            return True
        return _copy_file(path, dest)

    def flush(self) -> None:
        """Write every checkpoint held in memory."""
        while self._pending:
            path, checkpoint = self._pending.popitem()
            super().save_checkpoint(checkpoint, path)

    def teardown(self) -> None:
        self.flush()
        super().teardown()


def copy_checkpoint(io: CheckpointIO, path: Any, dest: Any) -> bool:
    """Write checkpoint `path` to `dest` as it stands now, from memory when `io` holds it.

    A sweep trial hands its best checkpoint to Tune this way (sweep/trial.py). Returns
    whether there was one to copy."""
    if isinstance(io, WriteAtTeardownCheckpointIO):
        return io.copy_to(path, dest)
    return _copy_file(path, dest)
