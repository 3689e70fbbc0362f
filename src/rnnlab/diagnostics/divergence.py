"""Divergence detail: which part of the network's gradient blew up first, and when.

A NaN/inf loss ends a run at once (`DivergedError`, outcome `diverged`); the step, the last
finite loss and the last gradient norm come from the module. This callback adds *where*
it started: every optimizer step it keeps the gradient norm (before clipping) of each part
of the network — `encoder`, each recurrent layer `l{i}`, `head` — for the last `WINDOW`
steps, on-device. When the run diverges it finds, for each part, the first step whose norm
was not finite or more than `BLOWUP_FACTOR` times the median of its previous (up to 8)
steps (at least 3 of them); the part that got there first "blew up first" (ties: the
larger jump). When no part jumped (a loss can turn NaN from the forward pass alone) it
names the part whose norm grew most over the window and says so (`blowup_rule`); with a
single recorded step (a run that diverged at its second step) it says `undetermined`.

Seen on the adding problem (T=30, tanh RNN, SGD lr 3, no clipping): the head's gradient
jumps 80x at step 3 while the saturating tanh layer's goes to zero; the loss is inf at
step 14.

`fit` adds `divergence_detail(trainer)` to `FitResult.divergence`; the tracking layer
turns its scalar entries into `rnnlab.divergence.*` tags and stores the whole window as
the artifact `diagnostics/divergence.json`.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import Tensor

WINDOW = 32
BLOWUP_FACTOR = 10.0
BASELINE_STEPS = 8
MIN_BASELINE_STEPS = 3  # a median of fewer steps is noise (the first updates move a lot)


def parameter_groups(pl_module: pl.LightningModule) -> dict[str, list[torch.nn.Parameter]]:
    """The network's parts that own parameters: encoder, l0..l{n-1}, head (net's children)."""
    net = getattr(pl_module, "net", pl_module)
    groups: dict[str, list[torch.nn.Parameter]] = {}
    for name, child in net.named_children():
        if name == "layers" and isinstance(child, torch.nn.ModuleList):
            for i, layer in enumerate(child):
                groups[f"l{i}"] = list(layer.parameters())
            continue
        params = list(child.parameters())
        if params:
            groups[name] = params
    return groups


class GroupNorms:
    """‖∂L/∂θ‖ of each part, per step, in a few fused ops (no per-part loop, no sync)."""

    def __init__(self, groups: dict[str, list[torch.nn.Parameter]]) -> None:
        self.names = list(groups)
        self.params = [p for params in groups.values() for p in params]
        index = [i for i, params in enumerate(groups.values()) for _ in params]
        self.index = torch.tensor(index, dtype=torch.long)

    def __call__(self) -> Tensor:
        grads = [p.grad for p in self.params]
        device = self.params[0].device
        if self.index.device != device:
            self.index = self.index.to(device)
        present = [g is not None for g in grads]
        if not all(present):  # a part without gradients this step (frozen, unused)
            grads = [g if g is not None else torch.zeros(1, device=device) for g in grads]
        norms = torch.stack(torch._foreach_norm([g.detach() for g in grads])).float()
        squares = torch.zeros(len(self.names), device=device).index_add_(0, self.index, norms**2)
        return squares.sqrt()


def find_blowup(steps: list[int], norms: dict[str, list[float]]) -> dict[str, Any]:
    """The part whose gradient norm blew up first in a window of steps (see module doc)."""
    best: tuple[int, float, str] | None = None  # (index, -jump, part)
    for part, series in norms.items():
        x = np.asarray(series, dtype=np.float64)
        for j in range(len(x)):
            previous = x[max(0, j - BASELINE_STEPS) : j]
            previous = previous[np.isfinite(previous)]
            if not np.isfinite(x[j]):
                jump = math.inf
            elif previous.size >= MIN_BASELINE_STEPS and np.median(previous) > 0:
                jump = float(x[j] / np.median(previous))
            else:
                continue
            if jump > BLOWUP_FACTOR:
                key = (j, -jump, part)
                if best is None or key < best:
                    best = key
                break
    if best is not None:
        j, neg_jump, part = best
        return {
            "blowup_layer": part,
            "blowup_step": steps[j],
            "blowup_factor": -neg_jump,
            "blowup_rule": f"first norm > {BLOWUP_FACTOR:g}x its recent median or not finite",
        }
    growth = {}
    for part, series in norms.items():
        x = np.asarray(series, dtype=np.float64)
        x = x[np.isfinite(x)]
        if x.size >= 2 and np.median(x) > 0:
            growth[part] = float(x[-1] / np.median(x))
    if not growth:
        return {
            "blowup_layer": "undetermined",
            "blowup_step": steps[-1] if steps else -1,
            "blowup_rule": f"only {len(steps)} step(s) recorded before the divergence",
        }
    part = max(growth, key=lambda k: growth[k])
    return {
        "blowup_layer": part,
        "blowup_step": steps[-1],
        "blowup_factor": growth[part],
        "blowup_rule": "no jump; largest growth of the last norm over the window's median",
    }


class DivergenceProbe(Callback):
    """Keeps the last `WINDOW` steps' per-part gradient norms; explains a divergence."""

    def __init__(self, window: int = WINDOW) -> None:
        self.window = window
        self._buffer: deque[tuple[int, Tensor]] = deque(maxlen=window)
        self._norms: GroupNorms | None = None
        self.detail: dict[str, Any] = {}

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        groups = parameter_groups(pl_module)
        self._norms = GroupNorms(groups) if groups else None

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        if self._norms is not None:
            self._buffer.append((trainer.global_step, self._norms()))

    def window_norms(self) -> tuple[list[int], dict[str, list[float]]]:
        if not self._buffer:
            return [], {}
        steps = [s for s, _ in self._buffer]
        host = torch.stack([t for _, t in self._buffer]).cpu().double().numpy()
        names = self._norms.names if self._norms is not None else []
        return steps, {name: host[:, i].tolist() for i, name in enumerate(names)}

    def explain(self) -> dict[str, Any]:
        steps, norms = self.window_norms()
        if not steps:
            return {}
        detail = find_blowup(steps, norms)
        for part, series in norms.items():
            detail[f"grad_norm.{part}"] = series[-1]
        detail["window"] = {"steps": steps, "grad_norms": norms}
        return detail

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if type(exception).__name__ == "DivergedError":
            self.detail = self.explain()


def divergence_detail(trainer: pl.Trainer) -> dict[str, Any]:
    """What the trainer's DivergenceProbe found ({} without one)."""
    for cb in trainer.callbacks:
        if isinstance(cb, DivergenceProbe):
            return dict(cb.detail)
    return {}
