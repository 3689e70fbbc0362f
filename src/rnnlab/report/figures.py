"""The report's PNGs: importances, parallel coordinates, and the init x clipping heatmap.

matplotlib's object API on the Agg canvas (no pyplot state, no display). Every figure has
labelled axes and says what its colour means.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from rnnlab.report.analysis import Grid, Importances
from rnnlab.report.data import SweepReport


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_importances(imp: Importances, path: Path) -> Path | None:
    if not imp.values:
        return None
    names = list(imp.values)[::-1]
    values = [imp.values[n] for n in names]
    fig = _figure(8, 0.45 * len(names) + 1.4)
    ax = fig.subplots()
    ax.barh(names, values, color="tab:blue")
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize="small")
    ax.set_xlim(0, max(values) * 1.2 if max(values) > 0 else 1)
    ax.set_xlabel("importance (PED-ANOVA, share of the total)")
    ax.set_ylabel("searched parameter")
    ax.set_title(f"Hyper-parameter importance ({imp.trials} trials with a value)")
    fig.savefig(path)
    return path


def _axis_values(report: SweepReport, key: str) -> tuple[list[float | None], list[str], Any]:
    """Each valued trial's position on axis `key` in [0, 1] (None: not sampled there)."""
    import optuna

    rows = report.valued()
    dist = report.distributions.get(key)
    raw = [r.params.get(key) for r in rows]
    if isinstance(dist, optuna.distributions.CategoricalDistribution):
        choices = [str(c) for c in dist.choices]
        spread = max(len(choices) - 1, 1)
        pos = [None if v is None else choices.index(str(v)) / spread for v in raw]
        return pos, choices, "categorical"
    numeric = [float(v) for v in raw if v is not None]
    log = bool(getattr(dist, "log", False))
    low = getattr(dist, "low", min(numeric) if numeric else 0.0)
    high = getattr(dist, "high", max(numeric) if numeric else 1.0)
    f = (lambda x: math.log10(x)) if log and low > 0 else (lambda x: x)
    lo, hi = f(low), f(high)
    span = (hi - lo) or 1.0
    pos = [None if v is None else (f(float(v)) - lo) / span for v in raw]
    return pos, [f"{low:.3g}", f"{high:.3g}"], "log" if log else "linear"


def plot_parallel_coordinates(report: SweepReport, path: Path) -> Path | None:
    """One line per trial with a value across every searched parameter and the metric."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    rows = report.valued()
    keys = [k for k in report.distributions if any(k in r.params for r in rows)]
    if not rows or not keys:
        return None
    values = np.array([r.value for r in rows], dtype=float)
    lo, hi = float(values.min()), float(values.max())
    metric_pos = (values - lo) / ((hi - lo) or 1.0)
    axes = [_axis_values(report, k) for k in keys]
    n_axes = len(keys) + 1
    fig = _figure(max(8, 1.6 * n_axes), 5.5)
    ax = fig.subplots()
    cmap = colormaps["viridis_r" if report.minimize else "viridis"]
    norm = Normalize(lo, hi if hi > lo else lo + 1)
    order = np.argsort(-values if report.minimize else values)  # best drawn last, on top
    for i in order:
        ys = [a[0][i] for a in axes] + [metric_pos[i]]
        xs = [x for x, y in zip(range(n_axes), ys, strict=True) if y is not None]
        ys = [y for y in ys if y is not None]
        ax.plot(xs, ys, color=cmap(norm(values[i])), lw=1.8, alpha=0.85, marker="o", ms=3)
    for x, (_, ticks, kind) in enumerate(axes):
        ax.axvline(x, color="0.3", lw=0.8)
        if kind == "categorical":
            spread = max(len(ticks) - 1, 1)
            for j, label in enumerate(ticks):
                ax.text(x + 0.03, j / spread, label, fontsize="x-small", va="center")
        else:
            ax.text(x + 0.03, 0, ticks[0], fontsize="x-small", va="bottom")
            ax.text(x + 0.03, 1, ticks[1], fontsize="x-small", va="top")
    ax.axvline(len(keys), color="0.3", lw=0.8)
    ax.text(len(keys) + 0.03, 0, f"{lo:.3g}", fontsize="x-small", va="bottom")
    ax.text(len(keys) + 0.03, 1, f"{hi:.3g}", fontsize="x-small", va="top")
    labels = [k.replace("group.", "").replace("model.", "").replace("train.", "") for k in keys]
    ax.set_xticks(range(n_axes), [*labels, report.record.metric], rotation=20, ha="right")
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.08)
    ax.set_xlim(-0.2, n_axes - 0.5)
    ax.set_xlabel("searched parameter (log axes where the search was log-uniform)")
    ax.set_ylabel("position on each axis (low → high)")
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=report.record.metric)
    diverged = sum(1 for t in report.trials if t.outcome == "diverged")
    ax.set_title(
        f"Parallel coordinates: {len(rows)} trials with a value"
        + (f" ({diverged} diverged, not shown)" if diverged else "")
    )
    fig.savefig(path)
    return path


def plot_init_clip_heatmap(report: SweepReport, grid: Grid, path: Path) -> Path | None:
    """Best metric per recurrent init (rows) x clipping (columns), one panel per model."""
    from matplotlib import colormaps

    if not grid.counts:
        return None
    values = list(grid.best.values())
    fig = _figure(
        max(5.5, 2.0 + 1.6 * len(grid.bins)) * len(grid.models), 1.2 + 0.7 * len(grid.inits) + 1
    )
    axes = fig.subplots(1, len(grid.models), squeeze=False)[0]
    cmap = colormaps["viridis_r" if report.minimize else "viridis"].with_extremes(bad="0.85")
    vmin = min(values) if values else 0.0
    vmax = max(values) if values else 1.0
    mesh = None
    for ax, model in zip(axes, grid.models, strict=True):
        matrix = np.full((len(grid.inits), len(grid.bins)), np.nan)
        for (m, init, b), v in grid.best.items():
            if m == model:
                matrix[grid.inits.index(init), grid.bins.index(b)] = v
        mesh = ax.imshow(
            np.ma.masked_invalid(matrix),
            cmap=cmap,
            vmin=vmin,
            vmax=vmax if vmax > vmin else vmin + 1,
            aspect="auto",
        )
        for r, init in enumerate(grid.inits):
            for c, b in enumerate(grid.bins):
                key = (model, init, b)
                n = grid.counts.get(key, 0)
                if not n:
                    continue
                text = "" if np.isnan(matrix[r, c]) else f"{matrix[r, c]:.3g}\n"
                text += f"n={n}"
                if grid.diverged.get(key):
                    text += f", {grid.diverged[key]} diverged"
                ax.text(
                    c,
                    r,
                    text,
                    ha="center",
                    va="center",
                    fontsize="x-small",
                    color="white" if not np.isnan(matrix[r, c]) else "black",
                )
        ax.set_xticks(range(len(grid.bins)), grid.bins)
        ax.set_yticks(range(len(grid.inits)), grid.inits)
        ax.set_xlabel("gradient clipping (threshold)")
        ax.set_ylabel("recurrent init")
        ax.set_title(f"model {model}")
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), label=f"best {report.record.metric}")
    fig.suptitle(
        f"Best {report.record.metric} by recurrent init x clipping (grey: no trial with a value)",
        fontsize="medium",
    )
    fig.savefig(path)
    return path
