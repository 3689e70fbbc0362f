"""Why a run trained or failed: gradient flow through time, clipping, spectra, divergence, plots.

Each diagnostic is a Lightning callback switched on from `diagnostics.*` in the config;
`build_diagnostics` returns none of them when every switch is off, so a run without
diagnostics registers no hook and pays nothing. Sweeps switch them on (conf/sweep.yaml).
"""

from __future__ import annotations

from pytorch_lightning.callbacks import Callback

from rnnlab.config import RunConfig


def build_diagnostics(cfg: RunConfig) -> list[Callback]:
    """The diagnostic callbacks `cfg.diagnostics` asks for, in the order they must run.

    The shared EpochLog follows the callbacks that add to it; plots come last: they draw
    what the others collected, also when the fit fails.
    """
    from rnnlab.diagnostics.clipping import ClippingTelemetry
    from rnnlab.diagnostics.divergence import DivergenceProbe
    from rnnlab.diagnostics.gradient_flow import GradientFlow
    from rnnlab.diagnostics.plots import DiagnosticPlots
    from rnnlab.diagnostics.sink import EpochLog
    from rnnlab.diagnostics.spectra import RecurrentSpectra

    d = cfg.diagnostics
    epoch_log = EpochLog()  # one MLflow write per epoch for all of them
    flow = GradientFlow(d.every_n_steps, epoch_log=epoch_log) if d.gradient_flow else None
    clip = (
        ClippingTelemetry(cfg.train.clip.threshold, cfg.train.clip.mode, epoch_log=epoch_log)
        if d.clipping
        else None
    )
    callbacks: list[Callback] = [cb for cb in (flow, clip) if cb is not None]
    if d.spectra:
        callbacks.append(RecurrentSpectra(epoch_log=epoch_log))
    if d.divergence:
        callbacks.append(DivergenceProbe())
    if any(isinstance(cb, GradientFlow | ClippingTelemetry | RecurrentSpectra) for cb in callbacks):
        callbacks.append(epoch_log)  # after everything that adds to it
    if d.plots:
        callbacks.append(DiagnosticPlots(gradient_flow=flow, clipping=clip))
    return callbacks
