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

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback


class OnceResolvedDataHooks:
    """Wraps Lightning's selector (`_DataHookSelector`), remembering each hook's answer.

    A wrapper rather than a subclass, so that nothing here imports Lightning's private
    class: Lightning calls only `get_instance` on it, and any other attribute is the
    wrapped selector's.
    """

    def __init__(self, selector: Any) -> None:
        self.selector = selector
        self._resolved: dict[str, pl.LightningModule | pl.LightningDataModule] = {}

    def get_instance(self, hook_name: str) -> pl.LightningModule | pl.LightningDataModule:
        try:
            return self._resolved[hook_name]
        except KeyError:
            instance = self._resolved[hook_name] = self.selector.get_instance(hook_name)
            return instance

    def __getattr__(self, name: str) -> Any:
        if name == "selector":  # not set yet (a copy or an unpickling in progress)
            raise AttributeError(name)
        return getattr(self.selector, name)


class ResolveDataHooksOnce(Callback):
    """Wraps the trainer's data-hook selector in one that resolves each hook once."""

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        connector = getattr(trainer, "_data_connector", None)
        selector = getattr(connector, "_datahook_selector", None)
        # A Lightning that keeps no such selector, or one already wrapped, is left as it is:
        # the run then merely keeps the per-batch cost.
        if callable(getattr(selector, "get_instance", None)) and not isinstance(
            selector, OnceResolvedDataHooks
        ):
            connector._datahook_selector = OnceResolvedDataHooks(selector)  # type: ignore[union-attr]
