"""`rnnlab report NAME`: one self-contained HTML page per sweep, and a terminal summary.

The page (`<sweep folder>/report/index.html`) links its PNGs by relative path, sits beside
them, and is also stored as artifacts (`report/`) of the sweep's parent MLflow run. It works
for a running sweep too: what exists so far is shown, and the status says it is running.
"""

from __future__ import annotations

import datetime as dt
import html
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from rnnlab.report import analysis, figures
from rnnlab.report.data import SweepReport, TrialRow, load_sweep_report

REPORT_DIR = "report"
GRADIENT_FLOW_ARTIFACT = "plots/gradient_flow.png"  # rnnlab.diagnostics.plots

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
.note { color: #666; font-size: 0.9rem; } .status { font-weight: bold; }
.wide { overflow-x: auto; } figure { margin: 0.5rem 0 1.5rem 0; } figcaption { color: #555; font-size: 0.9rem; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    out = [
        '<div class="wide"><table><thead><tr>',
        *(f"<th>{_e(h)}</th>" for h in header),
        "</tr></thead><tbody>",
    ]
    for row in rows:
        cells = (
            f'<td class="num">{_e(_fmt(c))}</td>' if i in numeric else f"<td>{_e(_fmt(c))}</td>"
            for i, c in enumerate(row)
        )
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _figure_html(name: str | None, caption: str) -> str:
    if name is None:
        return f'<p class="note">{_e(caption)}: nothing to plot yet.</p>'
    return (
        f'<figure><img src="{_e(name)}" alt="{_e(caption)}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _param_keys(report: SweepReport) -> list[str]:
    return [k for k in report.distributions if any(k in t.params for t in report.trials)]


def _flow_labels(trial: TrialRow) -> str:
    initial = trial.tags.get("rnnlab.gradient_flow.initial")
    last = trial.tags.get("rnnlab.gradient_flow")
    if not initial and not last:
        return "-"
    return f"{initial or '?'} → {last or '?'}"


def _download_gradient_flow(report: SweepReport, trial: TrialRow, dest: Path) -> bool:
    """Copy a trial's gradient-flow PNG (a run artifact) to `dest`; False if it has none."""
    from rnnlab.tracking import runs

    if not trial.run_id:
        return False
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = runs.client(report.record.tracking_uri)
    with tempfile.TemporaryDirectory(prefix="rnnlab-report-") as tmp:
        try:
            local = client.download_artifacts(trial.run_id, GRADIENT_FLOW_ARTIFACT, tmp)
        except Exception:  # no such artifact (diagnostics off, or the run is still early)
            return False
        shutil.copyfile(local, dest)
    return True


def _gradient_flow_section(report: SweepReport, out: Path) -> str:
    best, worst = analysis.best_and_worst(report)
    diverged = analysis.diverged_trials(report)
    picks: list[tuple[str, TrialRow]] = []
    if best is not None:
        picks.append(("best", best))
    if worst is not None:
        picks.append(("worst", worst))
    if diverged:
        picks.append(("diverged", diverged[0]))
    parts = []
    for label, trial in picks:
        name = f"gradient_flow_{label}.png"
        value = "diverged" if trial.value is None else f"{report.record.metric} = {trial.value:.4g}"
        caption = (
            f"{label} trial {trial.number} ({value}; {analysis.describe_setting(trial)}; "
            f"gradient flow at init → last epoch: {_flow_labels(trial)}; run {trial.run_id})"
        )
        if _download_gradient_flow(report, trial, out / name):
            parts.append(_figure_html(name, caption))
        else:
            parts.append(f'<p class="note">{_e(caption)}: no gradient-flow plot in its run.</p>')
    if not parts:
        return '<p class="note">No trial has finished yet.</p>'
    return "".join(parts)


def _render(report: SweepReport, out: Path, top: int) -> str:
    rec = report.record
    counts = report.counts()
    imp = analysis.importances(report)
    grid = analysis.init_clip_grid(report)
    imp_png = figures.plot_importances(imp, out / "importance.png")
    pc_png = figures.plot_parallel_coordinates(report, out / "parallel_coordinates.png")
    heat_png = figures.plot_init_clip_heatmap(report, grid, out / "init_clip_heatmap.png")
    keys = _param_keys(report)
    direction = "lower is better" if report.minimize else "higher is better"
    now = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
    body = [
        f"<h1>Sweep {_e(rec.name)}</h1>",
        f'<p><span class="status">{_e(rec.status)}</span> · {len(report.trials)} of '
        f"{rec.trials} trials · metric <code>{_e(rec.metric)}</code> ({direction}) · "
        f"report written {_e(now)}</p>",
        f'<p class="note">MLflow experiment {_e(rec.experiment)} ({_e(rec.tracking_uri)}), '
        f"parent run {_e(rec.parent_run_id)} · folder {_e(report.folder)}</p>",
        "<h2>Outcomes</h2>",
        _table(["outcome", "trials"], [[k, v] for k, v in counts.items()], {1}),
    ]
    best = report.valued()[:top]
    body.append(f"<h2>Best {len(best)} configurations</h2>")
    if best:
        header = ["#", "trial", rec.metric, "outcome", "gradient flow (init → last)", *keys, "run"]
        rows = [
            [
                i + 1,
                t.number,
                t.value,
                t.outcome,
                _flow_labels(t),
                *(t.params.get(k, "—") for k in keys),
                t.run_id[:12],
            ]
            for i, t in enumerate(best)
        ]
        body.append(_table(header, rows, {0, 1, 2}))
        body.append(
            '<p class="note">— : the parameter was not sampled (its condition did not hold).</p>'
        )
    else:
        body.append('<p class="note">No trial with a value yet.</p>')
    body.append("<h2>Hyper-parameter importance</h2>")
    body.append(
        f'<p class="note">{_e(imp.note)}. Diverged trials are excluded (counted above).</p>'
    )
    if imp.values:
        body.append(
            _table(["parameter", "importance"], [[k, v] for k, v in imp.values.items()], {1})
        )
    body.append(
        _figure_html(imp_png.name if imp_png else None, "importance per searched parameter")
    )
    body.append("<h2>Parallel coordinates</h2>")
    body.append(
        _figure_html(
            pc_png.name if pc_png else None,
            "each line is a trial with a value, coloured by the metric",
        )
    )
    body.append("<h2>Recurrent init × clipping</h2>")
    body.append(
        _figure_html(
            heat_png.name if heat_png else None,
            f"best {rec.metric} per recurrent init and clipping bin (off / threshold at or below / above the median threshold), per model; n counts every trial in the cell",
        )
    )
    diverged = analysis.diverged_trials(report)
    body.append(f"<h2>Settings that diverged ({len(diverged)})</h2>")
    if diverged:
        rows = [
            [
                t.number,
                analysis.describe_setting(t),
                t.tags.get("rnnlab.divergence.step", "?"),
                t.tags.get("rnnlab.divergence.blowup_layer", "?"),
                t.tags.get("rnnlab.divergence.last_finite_loss", "?"),
                t.run_id[:12],
            ]
            for t in diverged
        ]
        body.append(
            _table(
                ["trial", "setting", "step", "blew up first", "last finite loss", "run"], rows, {0}
            )
        )
    else:
        body.append('<p class="note">No trial diverged.</p>')
    body.append("<h2>Gradient flow of the best and worst trials</h2>")
    body.append(_gradient_flow_section(report, out))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>rnnlab sweep {_e(rec.name)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def write_report(
    sweep_folder: Path,
    top: int = 5,
    *,
    report: SweepReport | None = None,
    log_to_run: bool = True,
) -> Path:
    """Write `<sweep_folder>/report/index.html` with its PNGs; store them on the parent run.

    Returns the path of index.html. `report` lets a caller reuse what it already loaded;
    `log_to_run=False` leaves the MLflow parent run alone.
    """
    from rnnlab.tracking import runs

    sweep_folder = Path(sweep_folder).resolve()
    report = report or load_sweep_report(sweep_folder)
    out = sweep_folder / REPORT_DIR
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    index = out / "index.html"
    index.write_text(_render(report, out, top), encoding="utf-8")
    rec = report.record
    if not log_to_run:
        return index
    try:
        runs.client(rec.tracking_uri).log_artifacts(rec.parent_run_id, str(out), REPORT_DIR)
    except Exception as exc:  # the page on disk is the product; the run holds a copy
        print(f"rnnlab report: not stored on the parent run ({exc})"[:300], file=sys.stderr)
    return index


def summary_text(report: SweepReport, top: int = 3) -> str:
    """A few lines for the terminal: status, counts, the best trials, importances, divergences."""
    rec = report.record
    counts = ", ".join(f"{n} {k}" for k, n in report.counts().items()) or "no trials yet"
    lines = [f"sweep {rec.name} ({rec.status}): {counts}; metric {rec.metric} ({rec.mode})"]
    for i, t in enumerate(report.valued()[:top], 1):
        lines.append(
            f"  #{i} {rec.metric} {t.value:.4g}: {analysis.describe_setting(t)} (run {t.run_id[:12]})"
        )
    imp = analysis.importances(report)
    if imp.values:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in list(imp.values.items())[:4])
        lines.append(f"  importance ({imp.trials} trials): {shown}")
    else:
        lines.append(f"  importance: {imp.note}")
    diverged = analysis.diverged_trials(report)
    if diverged:
        lines.append(
            f"  diverged ({len(diverged)}): "
            + "; ".join(analysis.describe_setting(t) for t in diverged[:3])
        )
    return "\n".join(lines)
