"""Spectra of the hidden-to-hidden weights, at initialization and after every epoch.

For each recurrent layer (and direction) and each gate block of `weight_hh_l0` (PyTorch
stacks an LSTM's gates i, f, g, o and a GRU's r, z, n as row blocks), the spectral radius
max|λ(W)| and the largest singular value σ_max(W). In the linear regime the radius decides
whether the state (and the gradient through it) grows or shrinks over many steps; σ_max
bounds a single step's amplification. Names: `l{i}` (`l{i}_reverse` for the backward
direction) and the gate: `input, forget, cell, output` (LSTM), `reset, update, new` (GRU),
`recurrent` (plain RNN).

The values at initialization become run params, `init.spectral_radius.l0.forget` and
`init.max_singular_value.l0.forget`, so runs can be filtered by them in the MLflow UI;
the per-epoch values are metrics `spectra/l0/forget/spectral_radius` and
`spectra/l0/forget/max_singular_value`. Computed on the CPU in float64: a 256 x 256
eigendecomposition takes about a millisecond, once per epoch.
"""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback

from rnnlab.diagnostics.gradient_flow import recurrent_layers
from rnnlab.diagnostics.sink import EpochLog, emit, log_new_params

GATES = {
    "lstm": ("input", "forget", "cell", "output"),
    "gru": ("reset", "update", "new"),
    "rnn": ("recurrent",),
}


def gate_names(layer: torch.nn.Module) -> tuple[str, ...]:
    mode = getattr(layer, "mode", "")  # nn.RNNBase.mode: LSTM | GRU | RNN_TANH | RNN_RELU
    if mode == "LSTM":
        return GATES["lstm"]
    if mode == "GRU":
        return GATES["gru"]
    return GATES["rnn"]


def block_spectrum(block: torch.Tensor) -> tuple[float, float]:
    """(spectral radius, largest singular value) of one square gate block."""
    w = block.detach().to("cpu", torch.float64)
    radius = float(torch.linalg.eigvals(w).abs().max())
    sigma = float(torch.linalg.matrix_norm(w, ord=2))
    return radius, sigma


def layer_spectra(layers: list[torch.nn.Module]) -> dict[tuple[str, str], tuple[float, float]]:
    """{(layer name, gate): (spectral radius, largest singular value)} for a stack."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for i, layer in enumerate(layers):
        gates = gate_names(layer)
        for suffix, name in (("", f"l{i}"), ("_reverse", f"l{i}_reverse")):
            weight = getattr(layer, f"weight_hh_l0{suffix}", None)
            if weight is None:
                continue
            hidden = weight.shape[1]
            for g, gate in enumerate(gates):
                out[(name, gate)] = block_spectrum(weight[g * hidden : (g + 1) * hidden])
    return out


def as_params(spectra: dict[tuple[str, str], tuple[float, float]]) -> dict[str, str]:
    params = {}
    for (layer, gate), (radius, sigma) in spectra.items():
        params[f"init.spectral_radius.{layer}.{gate}"] = f"{radius:.6g}"
        params[f"init.max_singular_value.{layer}.{gate}"] = f"{sigma:.6g}"
    return params


def as_metrics(spectra: dict[tuple[str, str], tuple[float, float]]) -> dict[str, float]:
    metrics = {}
    for (layer, gate), (radius, sigma) in spectra.items():
        metrics[f"spectra/{layer}/{gate}/spectral_radius"] = radius
        metrics[f"spectra/{layer}/{gate}/max_singular_value"] = sigma
    return metrics


class RecurrentSpectra(Callback):
    """Logs the recurrent weights' spectra at initialization (params) and per epoch (metrics)."""

    def __init__(self, epoch_log: EpochLog | None = None) -> None:
        self.epoch_log = epoch_log
        self.initial: dict[tuple[str, str], tuple[float, float]] = {}
        self.epochs: list[dict[str, float]] = []

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # setup runs before Lightning restores a checkpoint: these are the initial weights.
        if stage == "fit" and not self.initial:
            self.initial = layer_spectra(recurrent_layers(pl_module))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.initial:
            log_new_params(trainer, as_params(self.initial))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = as_metrics(layer_spectra(recurrent_layers(pl_module)))
        if not metrics:
            return
        self.epochs.append({**metrics, "epoch": float(trainer.current_epoch)})
        emit(trainer, self.epoch_log, metrics)
