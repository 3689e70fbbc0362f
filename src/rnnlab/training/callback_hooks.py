"""Lightning stops calling the hooks a callback leaves as `Callback`'s no-ops.

Lightning hands every hook to every callback (`pytorch_lightning/trainer/call.py`,
`_call_callback_hooks`). On a 10-batch epoch that is about 70 calls per callback. Each call
builds the callback's `state_key` (ModelCheckpoint's formats a dict) and enters a profiler
context, even when the method does nothing. For rnnlab's four callbacks that came to 0.8 ms
of the parity benchmark's 40 ms epoch (docs/benchmarks.md).

Lightning skips a hook attribute that is not callable. So each hook a callback inherits
unchanged from `Callback` is set to None on the instance, and the hooks it overrides run as
before. State and checkpoint hooks (`state_dict`, `on_save_checkpoint`, ...) are left alone:
Lightning calls those directly, without that check.
"""

from __future__ import annotations

from typing import TypeVar

from pytorch_lightning.callbacks import Callback

_CALLED_DIRECTLY = frozenset({"on_save_checkpoint", "on_load_checkpoint"})

DISPATCHED_HOOKS = tuple(
    sorted(
        name
        for name, value in vars(Callback).items()
        if callable(value)
        and (name.startswith("on_") or name in ("setup", "teardown"))
        and name not in _CALLED_DIRECTLY
    )
)
"""The hooks Lightning hands to callbacks through `_call_callback_hooks`."""

C = TypeVar("C", bound=Callback)


def skip_inherited_hooks(callback: C) -> C:
    """`callback`, with every hook it does not override hidden from Lightning's dispatch."""
    cls = type(callback)
    for name in DISPATCHED_HOOKS:
        if getattr(cls, name) is getattr(Callback, name) and name not in vars(callback):
            setattr(callback, name, None)
    return callback
