"""Lightning decides once per stage, not once per batch, whether the module or the datamodule
handles a batch's transfer hooks.

Three hooks (`on_before_batch_transfer`, `transfer_batch_to_device`,
`on_after_batch_transfer`) may be overridden by the LightningModule or the datamodule.
Lightning's `_DataHookSelector` settles which one runs by inspecting both classes
(`is_overridden`) every time a batch is moved, and formats a warning text each time the
module overrides one while a datamodule is attached, as rnnlab's does. That came to about
10 µs a batch in a hot loop (docs/benchmarks.md); bare Lightning, given loaders rather than
a datamodule, skips the inspection entirely. The answer depends only on the two classes, so
it is kept after the first batch. The selector is swapped at `setup`, which Lightning calls
after attaching each stage's data (fit, validate, test, predict), so each stage still gets a
selector for its own module and datamodule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.connectors.data_connector import _DataHookSelector


@dataclass
class OnceResolvedDataHooks(_DataHookSelector):
    """Lightning's selector, remembering each hook's answer."""

    _resolved: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def get_instance(self, hook_name: str) -> pl.LightningModule | pl.LightningDataModule:
        try:
            return self._resolved[hook_name]
        except KeyError:
            instance = self._resolved[hook_name] = super().get_instance(hook_name)
            return instance


class ResolveDataHooksOnce(Callback):
    """Swaps the trainer's data-hook selector for one that resolves each hook once."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        connector = getattr(trainer, "_data_connector", None)
        selector = getattr(connector, "_datahook_selector", None)
        # Only Lightning's own selector is replaced: an unknown one (a later Lightning, or a
        # caller's) is left as it is, and the run merely keeps the per-batch cost.
        if type(selector) is _DataHookSelector:
            connector._datahook_selector = OnceResolvedDataHooks(  # type: ignore[union-attr]
                selector.model, selector.datamodule
            )
