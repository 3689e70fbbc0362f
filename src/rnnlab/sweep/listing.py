"""`rnnlab sweeps`: list the sweeps of a folder, show one's top trials, or stop a running one."""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from rnnlab.config import ConfigError
from rnnlab.sweep.state import SweepRecord, list_sweeps


def _counts_and_best(record: SweepRecord) -> tuple[str, str]:
    summary = record.summary or {}
    counts = summary.get("counts")
    best = summary.get("best_value")
    if counts is None:
        try:
            from rnnlab.sweep.runner import _counts

            counts, children = _counts(record.tracking_uri, record.experiment_id, record.name)
            values = [c.data.metrics.get(record.metric) for c in children]
            values = [v for v in values if v is not None]
            if values:
                best = min(values) if record.mode == "min" else max(values)
        except Exception:
            counts = {}
    text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "-"
    return text, ("-" if best is None else f"{best:.4g}")


def _list(root: Path) -> int:
    records = list_sweeps(root)
    if not records:
        print(f"no sweeps in {root} (start one with `rnnlab sweep`)")
        return 0
    rows = [("NAME", "STATUS", "TRIALS", "BEST", "METRIC", "FOLDER")]
    for r in records:
        counts, best = _counts_and_best(r)
        rows.append((r.name, r.effective_status(), counts, best, r.metric, r.folder))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _find(root: Path, name: str | None) -> SweepRecord:
    if not name:
        raise ConfigError("name the sweep: rnnlab sweeps show NAME")
    folder = root / name
    if not (folder / "sweep.json").exists():
        known = ", ".join(r.name for r in list_sweeps(root)) or "none"
        raise ConfigError(f"no sweep named '{name}' in {root}; sweeps here: {known}")
    return SweepRecord.load(folder)


def _show(root: Path, name: str | None, top: int) -> int:
    from rnnlab.sweep.tracking import sweep_runs
    from rnnlab.tracking import runs

    record = _find(root, name)
    children = sweep_runs(record.tracking_uri, record.experiment_id, record.name, role="search")
    scored = []
    for run in children:
        value = run.data.metrics.get(record.metric)
        sampled = {
            k[len("sampled.") :]: v for k, v in run.data.params.items() if k.startswith("sampled.")
        }
        scored.append((value, run.data.tags.get(runs.OUTCOME_TAG, "?"), run.info.run_id, sampled))
    reverse = record.mode == "max"
    scored.sort(key=lambda t: (t[0] is None, -(t[0] or 0) if reverse else (t[0] or 0)))
    print(
        f"sweep {record.name} ({record.effective_status()}), {len(children)} trials, metric {record.metric} ({record.mode})"
    )
    keys = sorted({k for *_, s in scored for k in s})
    header = [
        "#",
        record.metric,
        "outcome",
        "run_id",
        *[k.split(".")[-1] if not k.startswith("group.") else k[6:] for k in keys],
    ]
    rows = [header]
    for i, (value, outcome, run_id, sampled) in enumerate(scored[:top], 1):
        shown = "-" if value is None else f"{value:.4g}"
        rows.append(
            [str(i), shown, outcome, run_id[:12], *[_fmt(sampled.get(k, "")) for k in keys]]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _fmt(v: str) -> str:
    try:
        f = float(v)
        return f"{f:.3g}" if "." in v or "e" in v else v
    except ValueError:
        return v


def _stop(root: Path, name: str | None) -> int:
    record = _find(root, name)
    if record.effective_status() != "running":
        raise ConfigError(f"sweep '{record.name}' is not running ({record.effective_status()})")
    os.kill(record.pid, signal.SIGTERM)
    for _ in range(600):
        time.sleep(0.5)
        if SweepRecord.load(Path(record.folder)).effective_status() != "running":
            break
    print(
        f"stopped sweep {record.name}; resume with `rnnlab sweep sweep.name={record.name} sweep.resume=true`"
    )
    return 0


def list_command(args: argparse.Namespace) -> int:
    root = Path(args.root).resolve()
    if args.action == "show":
        return _show(root, args.name, args.top)
    if args.action == "stop":
        return _stop(root, args.name)
    return _list(root)
