"""When Python's cyclic garbage collector runs in an rnnlab process.

Importing torch, Lightning, MLflow (with SQLAlchemy and Alembic), Hydra and Ray leaves about
a million long-lived objects and almost no cyclic garbage. Every full collection walks all
of them and finds next to nothing. On `rnnlab train`, the full collections during start-up
cost about 1.2 s, and interpreter shutdown spent about 1.6 s more walking the same objects
(docs/benchmarks.md, "Start-up and shutdown of the rnnlab command"). Hence three rules:

- the `rnnlab` command pauses the collector while it starts up (`paused_for_startup`);
- training, and a sweep's Tune loop, run with the objects that existed before them frozen
  and the collector on, so it reclaims what training discards and nothing else
  (`long_lived_objects_frozen`);
- the command freezes everything just before the process exits (`freeze_for_exit`), so the
  operating system reclaims the memory without the interpreter walking it first.

Library callers (`rnnlab.training.fit` from a notebook, the tests) keep Python's default
collector; only the console command pauses it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# True while `paused_for_startup` holds the collector off. A collector the caller disabled
# itself stays disabled: only rnnlab's own pause is lifted for training.
_paused_by_rnnlab = False


@contextmanager
def paused_for_startup() -> Iterator[None]:
    """Hold full collections off while imports and set-up build long-lived objects."""
    global _paused_by_rnnlab
    if not gc.isenabled() or _paused_by_rnnlab:
        yield
        return
    gc.disable()
    _paused_by_rnnlab = True
    try:
        yield
    finally:
        _paused_by_rnnlab = False
        gc.enable()


@contextmanager
def long_lived_objects_frozen() -> Iterator[None]:
    """Keep the collector off the objects that exist before training, and on for the rest.

    The first full collection during training would otherwise walk the ~650k objects that
    the imports leave: 0.3-0.4 s inside epoch 1 of every `rnnlab train`, and as much again
    for every later full collection. `gc.freeze()` puts them out of the collector's reach;
    `gc.unfreeze()` hands them back when training ends, so nothing leaks across the trials a
    sweep worker runs. If something else froze objects first, it owns the freeze. If the
    command paused the collector for start-up, it runs again while training runs.
    """
    global _paused_by_rnnlab
    resume = _paused_by_rnnlab
    owns_freeze = gc.get_freeze_count() == 0
    if owns_freeze:
        gc.freeze()
    if resume:
        _paused_by_rnnlab = False
        gc.enable()
    try:
        yield
    finally:
        if resume:
            gc.disable()
            _paused_by_rnnlab = True
        if owns_freeze:
            gc.unfreeze()


def freeze_for_exit() -> None:
    """Called only when the process is about to end: shutdown then skips walking the heap.

    Objects still referenced at exit are freed by the operating system either way; what the
    freeze skips is cyclic garbage, whose finalizers Python does not promise to run at exit.
    """
    gc.freeze()
