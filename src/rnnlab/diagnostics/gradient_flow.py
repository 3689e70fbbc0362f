"""Gradient flow through time: how much of the loss's gradient reaches each time step.

Every `every_n_steps` optimizer steps (and on the first step of every epoch, so each epoch
has a measurement) the callback hooks each recurrent layer's *input* sequence and records
‖∂L/∂x_t‖ for every step t: the gradient that flowed back through the recurrence into step
t (∂L/∂x_t = W_ihᵀ ∂L/∂a_t, with a_t the layer's pre-activation at t). Output gradients
would not do: with a many-to-one head the gradient on the outputs is zero before the last
step, and every model would look "vanishing" (DESIGN.md). Hooks exist only on sampled
steps: a forward pre-hook on `net.layers[i]` (which is always called with the padded
(B, T, F) input, see `rnnlab.models.recurrent`) puts a tensor hook on that input, and both
are gone when the step ends. The cuDNN kernels keep running; the only extra work on a
sampled step is the gradient with respect to the first layer's data input.

Sequences of different lengths are aligned at their ends: position t counts back from each
sequence's last step, so "the last step" is every sequence's last step. For fixed-length
tasks that is simply the time step. For a bidirectional layer the input gradient mixes
both directions; its profile is logged but says less.

Per epoch (sampled steps averaged in log space), per layer `l{i}`:

- `gradflow/l{i}/log10_first_over_last`: log10(‖∂L/∂x_1‖ / ‖∂L/∂x_T‖).
- `gradflow/l{i}/log10_growth_per_step`: the fitted slope of log10‖∂L/∂x_t‖ against the
  number of steps back from the end; negative: the gradient shrinks going back in time.
- `gradflow/l{i}/input_grad_norm`: ‖∂L/∂x‖ over all steps; `gradflow/l{i}/weight_grad_norm`:
  ‖∂L/∂θ‖ of the layer's own weights (before clipping).
- `gradflow/l{i}/label`: -1 vanishing, 0 stable, 1 exploding; `gradflow/label` for the
  whole stack (exploding if any layer explodes, else vanishing if any vanishes).

The label compares the fitted change over the whole sequence,
`span = log10_growth_per_step × (T - 1)`, with `LABEL_DECADES` = 6: vanishing if
span < -6, exploding if span > +6 or any sampled gradient is not finite, stable otherwise.
Six decades because a weight's gradient is a float32 sum over time steps: a step whose
share is below ~1e-6 of the largest is at the edge of float32's resolution (2^-24 ≈ 6e-8)
and teaches the weights next to nothing. The fit, not the raw first/last ratio, decides:
a single step's norm depends on that step's input. Spans measured at initialization on
the adding problem at T=100, hidden 64: tanh RNN with U(±1/√H) recurrent init -41, with
orthogonal init x0.1 -24, LSTM with forget bias 0 -12, GRU -13 (vanishing); tanh RNN
orthogonal -2.3, IRNN -0.05, LSTM with forget bias 1 -0.9 (-0.9 to -5.6 over hidden
16-128 and two seeds) (stable). IRNN with Adam at lr 0.05 and no clipping: +17 after its
first update (exploding).

The run's tags `rnnlab.gradient_flow.initial` (the sample at step 0, before any update: the
label *at initialization*, also the metric `gradflow/initial_label`) and
`rnnlab.gradient_flow` (the latest epoch) carry the stack's label as a word.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import Tensor

from rnnlab.diagnostics.sink import EpochLog, emit

LABEL_DECADES = 6.0  # see the module docstring
LABELS = {-1: "vanishing", 0: "stable", 1: "exploding"}
# The smallest normal float32: norms that underflowed to 0 are counted as this small.
NORM_FLOOR = float(np.finfo(np.float32).tiny)


@dataclass
class FlowSummary:
    """One layer's gradient-flow profile, summarised."""

    log10_first_over_last: float
    log10_growth_per_step: float
    steps: int
    finite: bool

    @property
    def span(self) -> float:
        """Fitted change of log10‖∂L/∂x_t‖ from the last step back to the first."""
        return self.log10_growth_per_step * max(self.steps - 1, 0)

    @property
    def label(self) -> int:
        return label_of(self.span, self.finite)


def label_of(span: float, finite: bool = True) -> int:
    """-1 vanishing, 0 stable, 1 exploding, from the fitted change over the sequence."""
    if not finite or span > LABEL_DECADES:
        return 1
    if span < -LABEL_DECADES:
        return -1
    return 0


def stack_label(labels: list[int]) -> int:
    if any(v == 1 for v in labels):
        return 1
    if any(v == -1 for v in labels):
        return -1
    return 0


def summarize_profile(norms: np.ndarray) -> FlowSummary:
    """Summarise ‖∂L/∂x_t‖ over t (NaN where no sequence has a step t)."""
    norms = np.asarray(norms, dtype=np.float64)
    present = ~np.isnan(norms)
    finite = bool(np.isfinite(norms[present]).all())
    log = np.log10(np.clip(norms[present], NORM_FLOOR, None))
    t = np.flatnonzero(present)
    if not finite or log.size < 2:
        return FlowSummary(math.nan, math.nan, int(log.size), finite)
    back = (t[-1] - t).astype(np.float64)  # steps back from the last step
    slope = float(np.polyfit(back, log, 1)[0])
    return FlowSummary(float(log[0] - log[-1]), slope, int(t[-1] - t[0] + 1), finite)


def mean_log_profile(profiles: list[np.ndarray]) -> np.ndarray:
    """Geometric mean of several profiles, aligned at their ends (lengths may differ)."""
    width = max(p.size for p in profiles)
    stacked = np.full((len(profiles), width), np.nan)
    for row, p in zip(stacked, profiles, strict=True):
        row[width - p.size :] = np.log10(np.clip(p, NORM_FLOOR, None))
        row[width - p.size :][np.isnan(p)] = np.nan
        row[width - p.size :][~np.isfinite(p) & ~np.isnan(p)] = np.inf
    with np.errstate(all="ignore"):
        present = ~np.isnan(stacked)
        total = np.where(present, stacked, 0.0).sum(axis=0)
        count = present.sum(axis=0)
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return 10.0**mean


def recurrent_layers(pl_module: pl.LightningModule) -> list[torch.nn.Module]:
    layers = getattr(getattr(pl_module, "net", None), "layers", None)
    return list(layers) if layers is not None else []


def layer_grad_norms(layers: list[torch.nn.Module]) -> Tensor:
    """‖∂L/∂θ‖ of each layer's own parameters, on-device (no sync)."""
    out = []
    for layer in layers:
        grads = [p.grad.detach() for p in layer.parameters() if p.grad is not None]
        if grads:
            out.append(torch.nn.utils.get_total_norm(grads, norm_type=2.0).float())
        else:
            out.append(torch.zeros((), device=next(layer.parameters()).device))
    return torch.stack(out)


def _end_aligned_step_norms(grad: Tensor, lengths: Tensor | None) -> Tensor:
    """(B, T, F) input gradient → (T,) norm per step, sequences aligned at their ends.

    Position t holds each sequence's step `length - T + t`; positions before a sequence's
    start count nothing, and positions no sequence reaches are NaN.
    """
    # float64: an exploding gradient of 1e20 is finite in float32, its square is not.
    sq = grad.detach().double().pow(2).sum(-1)  # (B, T)
    steps = sq.shape[1]
    if lengths is None or bool((lengths >= steps).all()):
        return sq.sum(0).sqrt()
    lengths = lengths.to(sq.device).long().clamp(max=steps)
    index = lengths[:, None] - steps + torch.arange(steps, device=sq.device)[None, :]
    valid = index >= 0
    aligned = sq.gather(1, index.clamp(min=0)) * valid
    norms = aligned.sum(0).sqrt()
    return torch.where(valid.any(0), norms, torch.full_like(norms, math.nan))


@dataclass
class GradientSample:
    """One sampled optimizer step: ‖∂L/∂x_t‖ per layer (CPU arrays) and weight grad norms."""

    step: int
    epoch: int
    profiles: list[np.ndarray]
    weight_norms: list[float]


@dataclass
class _Pending:
    step: int
    epoch: int
    profiles: dict[int, Tensor] = field(default_factory=dict)
    weight_norms: Tensor | None = None


class GradientFlow(Callback):
    """Samples ‖∂L/∂x_t‖ of each recurrent layer's input and logs per-epoch summaries."""

    def __init__(self, every_n_steps: int = 50, epoch_log: EpochLog | None = None) -> None:
        self.epoch_log = epoch_log
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}: must be >= 1")
        self.every_n_steps = every_n_steps
        self.samples: list[GradientSample] = []  # every sampled step of the fit, for plots
        self.epochs: list[dict[str, float]] = []  # per-epoch summaries, as logged
        self._handles: list[Any] = []
        self._pending: _Pending | None = None
        self._epoch: list[_Pending] = []
        self._lengths: Tensor | None = None
        self.initial_label: float | None = None  # the stack's label before any update

    # --- sampling ------------------------------------------------------------------------
    def should_sample(self, trainer: pl.Trainer, batch_idx: int) -> bool:
        return batch_idx == 0 or trainer.global_step % self.every_n_steps == 0

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._remove_hooks()
        if not self.should_sample(trainer, batch_idx):
            return
        layers = recurrent_layers(pl_module)
        if not layers:
            return
        self._lengths = batch[2] if isinstance(batch, tuple | list) and len(batch) == 3 else None
        self._pending = _Pending(step=trainer.global_step, epoch=trainer.current_epoch)
        for i, layer in enumerate(layers):
            self._handles.append(layer.register_forward_pre_hook(partial(self._pre_hook, i)))

    def _pre_hook(self, index: int, module: torch.nn.Module, args: tuple[Any, ...]) -> Any:
        x = args[0]
        if not torch.is_grad_enabled() or not isinstance(x, Tensor):
            return None
        replaced = None
        if not x.requires_grad:
            # The first layer's input is data: make it a leaf that asks for its gradient.
            # Nothing upstream of it has parameters, so detaching cuts nothing.
            x = x.detach().requires_grad_(True)
            replaced = (x, *args[1:])
        x.register_hook(partial(self._record, index))
        return replaced

    def _record(self, index: int, grad: Tensor) -> None:
        if self._pending is not None:
            self._pending.profiles[index] = _end_aligned_step_norms(grad, self._lengths)

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any
    ) -> None:
        if self._pending is not None and self._pending.profiles:
            self._pending.weight_norms = layer_grad_norms(recurrent_layers(pl_module))

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        self._remove_hooks()
        if self._pending is not None and self._pending.profiles:
            self._epoch.append(self._pending)
        self._pending = None
        self._lengths = None

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self._remove_hooks()
        self._pending = None
        if isinstance(exception, KeyboardInterrupt):
            return
        # A run that diverged mid-epoch: what was sampled so far is logged and plotted too
        # (its label is often the first sign of the explosion).
        self._log_epoch(trainer, self._collect())

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._remove_hooks()

    # --- per-epoch summaries ---------------------------------------------------------------
    def _collect(self) -> list[GradientSample]:
        """Move this epoch's samples to the CPU (one transfer per epoch, not per step)."""
        pending, self._epoch = self._epoch, []
        if not pending:
            return []
        flat: list[Tensor] = []
        for p in pending:
            flat.extend(p.profiles[i] for i in sorted(p.profiles))
            if p.weight_norms is not None:
                flat.append(p.weight_norms)
        host = torch.cat([t.reshape(-1).double() for t in flat]).cpu().numpy()
        out, offset = [], 0
        for p in pending:
            profiles = []
            for i in sorted(p.profiles):
                n = p.profiles[i].numel()
                profiles.append(host[offset : offset + n].copy())
                offset += n
            weights: list[float] = []
            if p.weight_norms is not None:
                n = p.weight_norms.numel()
                weights = host[offset : offset + n].tolist()
                offset += n
            out.append(GradientSample(p.step, p.epoch, profiles, weights))
        self.samples.extend(out)
        return out

    def epoch_summary(self, samples: list[GradientSample]) -> dict[str, float]:
        if not samples:
            return {}
        metrics: dict[str, float] = {}
        labels = []
        for i in range(len(samples[0].profiles)):
            profiles = [s.profiles[i] for s in samples if i < len(s.profiles)]
            summary = summarize_profile(mean_log_profile(profiles))
            labels.append(summary.label)
            key = f"gradflow/l{i}"
            metrics[f"{key}/log10_first_over_last"] = summary.log10_first_over_last
            metrics[f"{key}/log10_growth_per_step"] = summary.log10_growth_per_step
            metrics[f"{key}/label"] = float(summary.label)
            with np.errstate(all="ignore"):
                totals = [math.sqrt(float(np.nansum(np.square(p)))) for p in profiles]
            metrics[f"{key}/input_grad_norm"] = float(np.mean(totals))
            weights = [s.weight_norms[i] for s in samples if i < len(s.weight_norms)]
            if weights:
                metrics[f"{key}/weight_grad_norm"] = float(np.mean(weights))
        metrics["gradflow/label"] = float(stack_label(labels))
        metrics["gradflow/samples"] = float(len(samples))
        return metrics

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log_epoch(trainer, self._collect())

    def _log_epoch(self, trainer: pl.Trainer, samples: list[GradientSample]) -> None:
        metrics = self.epoch_summary(samples)
        if not metrics:
            return
        metrics["epoch"] = float(trainer.current_epoch)
        self.epochs.append(metrics)
        label = int(metrics["gradflow/label"])
        tags = {"rnnlab.gradient_flow": LABELS[label]}
        first = self.samples[0] if self.samples else None
        if self.initial_label is None and first is not None and first.step == 0:
            # The sample taken before any update: the label "at initialization".
            self.initial_label = self.epoch_summary([first])["gradflow/label"]
            tags["rnnlab.gradient_flow.initial"] = LABELS[int(self.initial_label)]
            metrics["gradflow/initial_label"] = self.initial_label
        emit(trainer, self.epoch_log, {k: v for k, v in metrics.items() if k != "epoch"}, tags)
