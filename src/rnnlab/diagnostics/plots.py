"""PNG plots of a run's diagnostics, stored with the run as MLflow artifacts under `plots/`.

- `gradient_flow.png`: per recurrent layer, a heatmap of ‖∂L/∂x_t‖ over time step (x) and
  training step (y) on a log colour scale, beside the profiles of the first and last
  sampled steps; grey cells are exact zeros (float underflow) or steps no sequence has.
- `clipping.png`: the global gradient norm before and after clipping at every optimizer
  step (log scale, with the threshold), and the fraction of steps clipped per epoch.
- `loss.png`: training and validation loss per epoch, with the task's memoryless baseline.

Each title names the run's model, recurrent init and clipping. Figures are drawn with
matplotlib's object API on the Agg canvas (no pyplot state, no display), when the fit ends
or fails, so a diverged run gets its plots too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from matplotlib.ticker import MaxNLocator
from pytorch_lightning.callbacks import Callback

from rnnlab.diagnostics.clipping import ClippingTelemetry
from rnnlab.diagnostics.gradient_flow import NORM_FLOOR, GradientFlow, GradientSample
from rnnlab.diagnostics.sink import log_artifact

ARTIFACT_DIR = "plots"
GRADIENT_FLOW_PNG = "gradient_flow.png"
CLIPPING_PNG = "clipping.png"
LOSS_PNG = "loss.png"


def run_title(cfg: Any) -> str:
    """'lstm · init orthogonal (forget bias 1) · clip norm 1' from a RunConfig."""
    if cfg is None:
        return ""
    model, init, clip = cfg.model, cfg.model.init, cfg.train.clip
    parts = [f"{model.name} ({model.cell}, {model.num_layers}x{model.hidden_size})"]
    init_text = f"init {init.recurrent}"
    if init.recurrent_scale != 1.0:
        init_text += f" x{init.recurrent_scale:g}"
    if model.cell == "lstm":
        init_text += f", forget bias {init.forget_bias:g}"
    parts.append(init_text)
    parts.append("no clipping" if clip.mode == "none" else f"clip {clip.mode} {clip.threshold:g}")
    parts.append(f"lr {cfg.train.lr:g}")
    return " · ".join(parts)


def plain_log_ticks(axis: Any) -> None:
    """'1e-05' instead of matplotlib's mathtext '10⁻⁵': mathtext layout was most of the
    drawing time, and drawing is the one cost of diagnostics paid once per run."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, numticks=8))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}".replace("e+00", "")))
    axis.set_minor_formatter(NullFormatter())


def _figure(width: float, height: float, **margins: float) -> Any:
    """A figure with fixed margins (inches): matplotlib's constrained layout re-lays every
    tick label several times and took a third of the drawing time."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    left, right = margins.get("left", 0.9), margins.get("right", 0.3)
    top, bottom = margins.get("top", 0.7), margins.get("bottom", 0.6)
    fig.subplots_adjust(
        left=left / width,
        right=1 - right / width,
        top=1 - top / height,
        bottom=bottom / height,
        hspace=margins.get("hspace", 0.45),
        wspace=margins.get("wspace", 0.35),
    )
    return fig


def _gradient_matrix(samples: list[GradientSample], layer: int) -> tuple[np.ndarray, np.ndarray]:
    """(training steps, matrix steps x T) aligned at the sequences' ends; NaN: no value."""
    rows = [s.profiles[layer] for s in samples if layer < len(s.profiles)]
    steps = np.array([s.step for s in samples if layer < len(s.profiles)])
    width = max(r.size for r in rows)
    matrix = np.full((len(rows), width), np.nan)
    for out, row in zip(matrix, rows, strict=True):
        out[width - row.size :] = row
    return steps, matrix


def plot_gradient_flow(samples: list[GradientSample], title: str, path: Path) -> Path | None:
    """Heatmap of ‖∂L/∂x_t‖ (time step x training step) and first/last profiles per layer."""
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm

    if not samples:
        return None
    layers = max(len(s.profiles) for s in samples)
    fig = _figure(12, 3.4 * layers + 0.9, top=0.95, hspace=0.55, wspace=0.3)
    axes = fig.subplots(layers, 2, squeeze=False, width_ratios=[3, 2])
    cmap = colormaps["viridis"].with_extremes(bad="0.85")
    for i in range(layers):
        steps, matrix = _gradient_matrix(samples, i)
        shown = np.where(np.isfinite(matrix) & (matrix > 0), matrix, np.nan)
        positive = shown[np.isfinite(shown)]
        ax, prof = axes[i]
        if positive.size:
            vmin = max(float(positive.min()), NORM_FLOOR)
            vmax = max(float(positive.max()), vmin * 10)
            t_edges = np.arange(matrix.shape[1] + 1) + 0.5
            y = steps.astype(float)
            if y.size > 1:
                mids = (y[1:] + y[:-1]) / 2
                y_edges = np.concatenate(
                    [[y[0] - (mids[0] - y[0])], mids, [y[-1] + (y[-1] - mids[-1])]]
                )
            else:
                y_edges = np.array([y[0] - 0.5, y[0] + 0.5])
            mesh = ax.pcolormesh(
                t_edges,
                y_edges,
                np.ma.masked_invalid(shown),
                norm=LogNorm(vmin=vmin, vmax=vmax),
                cmap=cmap,
                shading="flat",
            )
            bar = fig.colorbar(mesh, ax=ax, label="‖∂L/∂x_t‖ (log scale)")
            plain_log_ticks(bar.ax.yaxis)
        ax.set_xlabel("time step t (sequences aligned at their last step)")
        ax.set_ylabel("training step")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"layer l{i}: gradient reaching each time step")
        for row, label in ((0, f"step {steps[0]}"), (-1, f"step {steps[-1]}")):
            values = np.where(matrix[row] > 0, matrix[row], np.nan)
            prof.plot(np.arange(1, values.size + 1), values, label=label)
            if len(steps) == 1:
                break
        prof.set_yscale("log")
        plain_log_ticks(prof.yaxis)
        prof.set_xlabel("time step t")
        prof.set_ylabel("‖∂L/∂x_t‖")
        prof.set_title(f"layer l{i}: first and last sampled step")
        prof.grid(True, which="major", alpha=0.3)
        prof.legend(loc="best", fontsize="small")
    fig.suptitle(
        f"Gradient flow through time — {title}\n(grey: exactly zero, e.g. underflow or dead "
        "units, or no sequence that long)",
        fontsize="medium",
    )
    fig.savefig(path)
    return path


def plot_clipping(
    telemetry: ClippingTelemetry, title: str, path: Path, steps_per_epoch: int | None = None
) -> Path | None:
    """Gradient norm before/after clipping per step, and the clip fraction per epoch."""
    steps, before, after, clipped = telemetry.history.arrays()
    if not steps.size:
        return None
    fig = _figure(10, 6.5, hspace=0.5)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 2])
    finite = np.isfinite(before) & (before > 0)
    top.plot(steps[finite], before[finite], lw=1, label="before clipping")
    ok = np.isfinite(after) & (after > 0)
    top.plot(steps[ok], after[ok], lw=1, alpha=0.8, label="after clipping")
    bad = ~np.isfinite(before)
    if bad.any():
        top.scatter(
            steps[bad],
            np.full(bad.sum(), np.nanmax(before[finite]) if finite.any() else 1.0),
            marker="x",
            color="red",
            label="not finite",
        )
    if telemetry.threshold is not None and telemetry.mode == "norm":
        top.axhline(
            telemetry.threshold,
            color="black",
            ls="--",
            lw=1,
            label=f"threshold {telemetry.threshold:g}",
        )
    top.set_yscale("log")
    plain_log_ticks(top.yaxis)
    top.set_xlabel("optimizer step")
    top.set_ylabel("global gradient norm")
    top.set_title("gradient norm per step")
    top.grid(True, alpha=0.3)
    top.legend(loc="best", fontsize="small")
    epochs = [e["epoch"] for e in telemetry.epochs]
    fractions = [e["clip/fraction"] for e in telemetry.epochs]
    if not epochs:  # a fit that failed in its first epoch: one bar for what it did
        epochs, fractions = [0.0], [float(clipped.mean())]
    bottom.bar(epochs, fractions, color="tab:orange")
    bottom.set_ylim(0, 1)
    bottom.set_xlabel("epoch")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylabel("fraction of steps clipped")
    bottom.set_title("clip fraction per epoch")
    bottom.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"Gradient clipping — {title}", fontsize="medium")
    fig.savefig(path)
    return path


def plot_loss(
    history: list[dict[str, float]],
    title: str,
    path: Path,
    baselines: dict[str, float] | None = None,
) -> Path | None:
    """Training and validation loss per epoch (log scale when they span a decade)."""
    if not history:
        return None
    epochs = [h.get("epoch", i) for i, h in enumerate(history)]
    fig = _figure(8, 4.5)
    ax = fig.subplots()
    values = []
    for key, label in (("train/loss", "training loss"), ("val/loss", "validation loss")):
        ys = [h.get(key, np.nan) for h in history]
        values.extend(y for y in ys if np.isfinite(y))
        ax.plot(epochs, ys, marker="o", label=label)
    for name, value in (baselines or {}).items():
        ax.axhline(value, color="grey", ls=":", label=f"baseline {name} {value:.3g}")
    if values and min(values) > 0 and max(values) / min(values) > 10:
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(f"Loss — {title}", fontsize="medium")
    fig.savefig(path)
    return path


class DiagnosticPlots(Callback):
    """Draws the plots when the fit ends (or fails) and logs them to the MLflow run."""

    def __init__(
        self,
        gradient_flow: GradientFlow | None = None,
        clipping: ClippingTelemetry | None = None,
        out_dir: Path | None = None,
    ) -> None:
        self.gradient_flow = gradient_flow
        self.clipping = clipping
        self.out_dir = out_dir  # also keep the PNGs here (tests, benchmarks)
        self.written: list[str] = []  # file names of the plots drawn

    def draw(self, pl_module: pl.LightningModule, folder: Path) -> list[Path]:
        cfg = getattr(pl_module, "cfg", None)
        title = run_title(cfg)
        spec = getattr(pl_module, "spec", None)
        out: list[Path | None] = []
        if self.gradient_flow is not None:
            out.append(
                plot_gradient_flow(self.gradient_flow.samples, title, folder / GRADIENT_FLOW_PNG)
            )
        if self.clipping is not None:
            out.append(plot_clipping(self.clipping, title, folder / CLIPPING_PNG))
        baselines = {
            f"({k})": v for k, v in (spec.baselines if spec else {}).items() if k in ("mse", "loss")
        }
        out.append(
            plot_loss(list(getattr(pl_module, "history", [])), title, folder / LOSS_PNG, baselines)
        )
        return [p for p in out if p is not None]

    def _draw_and_log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> list[Path]:
        """Draw the plots so far and log them to the run; rank 0 only, never after the end."""
        if not trainer.is_global_zero or self.written:
            return []
        with tempfile.TemporaryDirectory(prefix="rnnlab-plots-") as tmp:
            folder = self.out_dir or Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            paths = self.draw(pl_module, folder)
            for path in paths:
                log_artifact(trainer, path, ARTIFACT_DIR)
        return paths

    def _finish(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        paths = self._draw_and_log(trainer, pl_module)
        if paths:
            self.written = [p.name for p in paths]

    def snapshot(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Draw and log the plots so far; the end of the fit draws them again, complete.

        A sweep calls this before each report its scheduler may answer with "stop": Ray
        ends a stopped trial's worker without waiting for the fit to unwind, so plots drawn
        only at the end would be lost for pruned trials.
        """
        self._draw_and_log(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._finish(trainer, pl_module)

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if isinstance(exception, KeyboardInterrupt):
            return  # the user stopped it and wants the prompt back
        # Diverged or failed, or stopped by a sweep's scheduler (SystemExit): plot it too.
        self._finish(trainer, pl_module)
