"""What ASHA saves in `rnnlab sweep`: epochs consumed and best metric vs no scheduler (issue 3).

Runs the same search twice in-process (`build_plan` -> `preflight` -> `run_sweep`) in a
temporary directory, once with `sweep.scheduler=none` and once with `sweep.scheduler=asha`
(rnnlab's defaults: grace period 2 epochs, reduction factor 3), and compares

    epochs ratio = epochs consumed with ASHA / epochs consumed without   (target <= 0.35)
    best ratio   = best metric with ASHA / best metric without            (target: within 1%)

The task is scikit-learn's 8x8 digits read row by row (`task=digits`, 8 steps of 8 pixels,
validation accuracy), the space the default one (`search=init_dropout_clip`: tanh RNN vs
LSTM, recurrent and input init, dropout, clipping, learning rate), 24 trials of up to 27
epochs, 2 at a time. The sampler is `random` with a fixed seed, so both runs train exactly
the same 24 configurations and only the scheduler differs (TPE would learn from the values
ASHA cut short and then sample different points; `--sampler tpe` runs that instead).
Early stopping stays as `rnnlab sweep` configures it (patience 3) unless
`--no-early-stopping`. Epochs consumed are the per-epoch reports in each trial's Tune
`result.json`.

    python benchmarks/sweep_pruning.py                  # full run (~5 minutes on 2 quiet cores)
    python benchmarks/sweep_pruning.py --quick          # smoke run: 4 trials of 4 epochs
    python benchmarks/sweep_pruning.py --no-early-stopping --trials 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The sibling script holds the helpers both benchmarks share (temp dir, timers, Tune results).
sys.path.insert(0, str(Path(__file__).resolve().parent))
from sweep_bookkeeping import (
    assign_lanes,
    driver_timers,
    epoch_rows,
    in_temp_dir,
    load_line,
    machine_line,
    prepare_sweep,
    read_trials,
    trial_rows,
)

TARGET_EPOCHS_RATIO = 0.35
TARGET_BEST_DIFF = 0.01
SCHEDULERS = ("none", "asha")


@dataclass
class Search:
    scheduler: str
    summary: Any
    wall: float
    epochs: dict[str, int] = field(default_factory=dict)  # config key -> epochs it trained
    values: dict[str, float | None] = field(default_factory=dict)  # config key -> last value
    outcomes: dict[str, str] = field(default_factory=dict)
    # a trial's last report -> the next trial's start on the same worker, by how the first ended
    handovers: dict[str, list[float]] = field(default_factory=dict)

    @property
    def total_epochs(self) -> int:
        return sum(self.epochs.values())


def overrides_for(args: argparse.Namespace, scheduler: str) -> list[str]:
    task = ["task=digits", "task.order=rows"]
    if args.quick:
        task += ["model.hidden_size=16", "train.limit_batches=4"]
    out = [
        *task,
        "search=init_dropout_clip",
        f"train.max_epochs={args.epochs}",
        f"sweep.trials={args.trials}",
        f"sweep.max_concurrent={args.concurrent}",
        "hardware.cpus_per_trial=1",
        f"sweep.sampler={args.sampler}",
        f"sweep.seed={args.seed}",
        f"sweep.scheduler={scheduler}",
        "sweep.final_seeds=0",
        "sweep.progress=false",
        f"sweep.name=pruning-{scheduler}",
    ]
    if args.no_early_stopping:
        out.append("train.early_stopping.enabled=false")
    return out


def config_key(config: dict[str, Any]) -> str:
    return json.dumps(
        {k: round(v, 12) if isinstance(v, float) else v for k, v in config.items()},
        sort_keys=True,
    )


def run_search(args: argparse.Namespace, scheduler: str) -> Search:
    from rnnlab.sweep.runner import run_sweep

    plan = prepare_sweep(overrides_for(args, scheduler))
    with driver_timers() as marks:
        started = time.time()
        summary = run_sweep(plan)
        returned = time.time()
    fit = marks.first("Tuner.fit") or (started, returned)
    search = Search(scheduler=scheduler, summary=summary, wall=fit[1] - fit[0])
    rows_of = trial_rows(Path(summary.folder))
    # params.json: every trial Tune created, also one that errored before its first report
    for params in sorted((Path(summary.folder) / "tune").glob("*/params.json")):
        key = config_key(json.loads(params.read_text()))
        rows = rows_of.get(params.parent, [])
        errored = (params.parent / "error.txt").exists()
        if not rows:
            search.epochs[key], search.values[key] = 0, None
            search.outcomes[key] = "errored" if errored else "no result"
            continue
        last = rows[-1]
        value = last.get(summary.metric)
        ok = isinstance(value, int | float) and math.isfinite(value) and abs(value) < 1e29
        search.epochs[key] = len(epoch_rows(rows))
        search.values[key] = float(value) if ok else None
        outcome = str(last.get("rnnlab_outcome") or "pruned")
        search.outcomes[key] = f"{outcome}, errored" if errored else outcome
    ended = {
        str(rows[0]["trial_id"]): str(rows[-1].get("rnnlab_outcome") or "pruned")
        for rows in rows_of.values()
    }
    for lane in assign_lanes(read_trials(Path(summary.folder), {}), args.concurrent):
        for before, after in itertools.pairwise(lane):
            if after.gap_before is not None and after.pid == before.pid:
                how = ended.get(before.trial_id, "?")
                search.handovers.setdefault(how, []).append(after.gap_before)
    return search


def _short(config: str) -> str:
    parts = []
    for k, v in json.loads(config).items():
        name = k.split(".")[-1]
        parts.append(f"{name}={v:.3g}" if isinstance(v, float) else f"{name}={v}")
    return " ".join(parts)


def report(args: argparse.Namespace, searches: dict[str, Search], loads: tuple[str, str]) -> None:
    none, asha = searches["none"], searches["asha"]
    metric, mode = none.summary.metric, none.summary.mode
    p = print
    p()
    what = "quick digits" if args.quick else "digits rows (8 x 8 pixels)"
    p(
        f"sweep pruning: {args.trials} trials ({args.sampler} sampler, seed {args.seed}) "
        f"of {what}, "
        f"search init_dropout_clip, up to {args.epochs} epochs, {args.concurrent} at a time, "
        f"early stopping {'off' if args.no_early_stopping else 'on (patience 3)'}"
    )
    p(f"machine: {machine_line()}")
    p(f"load (1/5/15 min): before {loads[0]}, after {loads[1]}")
    same = set(none.epochs) == set(asha.epochs)
    p(f"same configurations in both searches: {'yes' if same else 'no'}")
    timeout = os.environ.get("TUNE_FUNCTION_THREAD_TIMEOUT_S")
    p(f"TUNE_FUNCTION_THREAD_TIMEOUT_S: {timeout or 'unset (Ray default 2 s)'}")
    p()
    p(" #  configuration" + " " * 63 + "none: ep value   asha: ep value   outcome")
    keys = sorted(set(none.epochs) | set(asha.epochs), key=lambda k: none.values.get(k) or 0.0)
    if mode == "max":
        keys.reverse()
    for i, key in enumerate(keys, 1):

        def cell(s: Search, k: str = key) -> str:
            if k not in s.epochs:
                return "  -      -  "
            v = s.values.get(k)
            shown = f"{v:.4f}" if v is not None else ("lost" if not s.epochs[k] else "diverged")
            return f"{s.epochs[k]:>3} {shown:>8}"

        p(
            f"{i:>2}  {_short(key)[:76]:<76}  {cell(none)}   {cell(asha)}   "
            f"{asha.outcomes.get(key, '-')}"
        )
    for s in (none, asha):
        lost = [k for k, o in s.outcomes.items() if o in ("errored", "no result")]
        if lost:
            p(
                f"{s.scheduler}: {len(lost)} of {len(s.outcomes)} trials errored "
                "before their first "
                "report (never trained; not in the sweep's MLflow counts)"
            )
    p()
    p(f"scheduler  trials  outcomes{' ' * 32}epochs  best {metric:<13} search wall")
    for s in (none, asha):
        counts = ", ".join(f"{n} {k}" for k, n in sorted(s.summary.counts.items()))
        best = s.summary.best_value
        p(
            f"{s.scheduler:<9}  {len(s.epochs):>6}  {counts:<40}{s.total_epochs:>6}  "
            f"{'-' if best is None else f'{best:.4f}':<18} {s.wall:6.1f} s"
        )
    p()
    epochs_ratio = asha.total_epochs / max(1, none.total_epochs)
    p(
        f"ratio epochs asha/none: {epochs_ratio:.3f}  (target <= {TARGET_EPOCHS_RATIO}; "
        f"{asha.total_epochs} of {none.total_epochs})"
    )
    if none.summary.best_value and asha.summary.best_value is not None:
        best_ratio = asha.summary.best_value / none.summary.best_value
        p(
            f"ratio best asha/none:   {best_ratio:.4f}  (target within {TARGET_BEST_DIFF:.0%}: "
            f"|diff| {abs(best_ratio - 1):.2%})"
        )
    else:
        p("ratio best asha/none:   n/a (a search has no best value)")
    p(f"ratio search wall asha/none: {asha.wall / max(1e-9, none.wall):.3f}")
    for s in (none, asha):
        p(f"best with {s.scheduler}: {_short(config_key(s.summary.best_params))}")
    p("worker hand-over (a trial's last report -> next trial's start on the same worker):")
    for s in (none, asha):
        for how, gaps in sorted(s.handovers.items()):
            p(
                f"  {s.scheduler}, after a {how} trial: median {statistics.median(gaps):.2f} s, "
                f"max {max(gaps):.2f} s ({len(gaps)} hand-overs)"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="default 24 (quick: 4)")
    parser.add_argument("--epochs", type=int, default=None, help="default 27 (quick: 4)")
    parser.add_argument("--concurrent", type=int, default=2, help="sweep.max_concurrent")
    parser.add_argument("--sampler", default="random", help="sweep.sampler (default random)")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--no-early-stopping", action="store_true")
    parser.add_argument(
        "--thread-timeout",
        type=int,
        default=None,
        help="set TUNE_FUNCTION_THREAD_TIMEOUT_S for the Ray workers (Ray's default: 2 s): how "
        "long a reused worker waits for a stopped trial's thread before Tune aborts the next trial",
    )
    parser.add_argument("--quick", action="store_true", help="4 tiny trials: a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    args.trials = args.trials or (4 if args.quick else 24)
    args.epochs = args.epochs or (4 if args.quick else 27)

    if args.thread_timeout is not None:
        # read in each worker (FunctionTrainable.reset_config); workers inherit it from ray.init
        os.environ["TUNE_FUNCTION_THREAD_TIMEOUT_S"] = str(args.thread_timeout)
    print(f"date: {dt.datetime.now().isoformat(timespec='seconds')}; command: {' '.join(sys.argv)}")
    load_before = load_line()
    with in_temp_dir(args.keep, "rnnlab-bench-pruning-"):
        searches = {s: run_search(args, s) for s in SCHEDULERS}
        report(args, searches, (load_before, load_line()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
