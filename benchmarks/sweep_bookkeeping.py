"""Bookkeeping overhead of `rnnlab sweep`: search wall time against the ideal (issue 3, item 11).

Runs one sweep in-process (`build_plan` -> `preflight` -> `run_sweep`) in a temporary
directory: 20 trials of one fixed training (adding problem, T=100, LSTM 64, 8 epochs, no
early stopping), 2 at a time with 1 CPU each, no scheduler, no final seeds, workers reused.
The searched values (learning rate and clip threshold, `search=lr_clip`) do not change how
long a trial takes, so every trial costs the same.

    ideal  = sum of trial times / 2
    ratio  = search wall time / ideal                       (target <= 1.15)

Where each number comes from (nothing inside a worker is changed):

  trial time       Tune's `time_total_s` of each trial: the time its function ran on the
                   worker, without the pauses while the driver handles a report (Tune's function
                   trainable blocks the training thread from one `tune.report` until the driver
                   asks for the next result). A trial that is the first on a fresh worker also
                   imports the training path on its first call; that excess over the median
                   lead-in of the other trials is moved to worker start-up.
  epoch time       per-epoch `time_this_iter_s` (iterations 2..E; the first epoch is taken as
                   their mean), the pure training part of a trial.
  driver times     when the driver received each result: the wall time of the TensorBoard
                   events Tune writes on the driver for every result.
  search wall      a timer around `ray.tune.Tuner.fit`; fixed set-up is everything in
                   `run_sweep` before it (Ray start, the loopback MLflow server, the parent
                   run), teardown everything after it. Timers also wrap `ray.init`,
                   `ray.shutdown` and the MLflow server's start/wait (driver side only).
  worker start-up  the worker processes that ran trials (distinct `pid`s in the trial
                   results); when Ray started each, when its core worker connected and when
                   its trainable actor was ready, from the Ray session's own logs (raylet.out,
                   python-core-worker-*.log).
  MLflow calls     the loopback server's access log (one line per HTTP request).

The search wall is split per lane (a worker slot; 2 lanes) into: start-up (search start to
the lane's first training step, minus a reused worker's lead-in), trial time, report round
trips (driver pauses between a trial's reports), gaps between trials (a trial's last report
to the next trial's function start on that lane), and the idle tail. Averaged over the lanes
these add up to the wall time exactly.

    python benchmarks/sweep_bookkeeping.py               # full run (~3-4 minutes on 2 quiet cores)
    python benchmarks/sweep_bookkeeping.py --quick       # smoke run: 4 tiny trials
    python benchmarks/sweep_bookkeeping.py --trials 30 --epochs 8 --keep
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import struct
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TARGET_RATIO = 1.15

# One fixed training of ~10 s on one core (measured ~1.1 s per epoch on this 2-core VM).
FULL_TASK = [
    "task=adding",
    "task.seq_len=100",
    "task.train_size=2000",
    "task.val_size=500",
    "task.test_size=100",
    "model=lstm",
    "model.hidden_size=64",
    "train.batch_size=50",
    "train.early_stopping.enabled=false",
]
QUICK_TASK = [
    "task=adding",
    "task.seq_len=20",
    "task.train_size=256",
    "task.val_size=64",
    "task.test_size=64",
    "model=lstm",
    "model.hidden_size=16",
    "train.batch_size=32",
    "train.early_stopping.enabled=false",
]


# --- shared with sweep_pruning.py ------------------------------------------------------------
def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    system = f"{platform.system()} {platform.release()}"
    return f"{system}, {os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}"


def load_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


@contextlib.contextmanager
def in_temp_dir(keep: bool, prefix: str) -> Iterator[Path]:
    """chdir into a fresh temporary folder (for ./mlflow.db and ./rnnlab-sweeps), and back."""
    previous = Path.cwd()
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    os.chdir(folder)
    try:
        yield folder
    finally:
        os.chdir(previous)
        if keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def prepare_sweep(overrides: list[str]) -> Any:
    """The plan `rnnlab sweep OVERRIDES` would run, checked as the command checks it."""
    from rnnlab.sweep.plan import build_plan
    from rnnlab.sweep.runner import preflight

    plan = build_plan(overrides)
    preflight(plan)
    return plan


def trial_rows(folder: Path) -> dict[Path, list[dict[str, Any]]]:
    """Each trial folder of a sweep's Tune experiment -> its reported results, in order."""
    out: dict[Path, list[dict[str, Any]]] = {}
    for path in sorted((folder / "tune").glob("*/result.json")):
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if rows:
            out[path.parent] = rows
    return out


def epoch_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The per-epoch reports (a trial's last report, flagged `rnnlab_done`, repeats its best)."""
    return [r for r in rows if not r.get("rnnlab_done")]


# --- driver-side timers -------------------------------------------------------------------------
@dataclass
class DriverMarks:
    """Wall-clock spans of a few driver-side calls, and where Ray wrote this session's logs."""

    spans: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    ray_logs: Path | None = None

    def first(self, name: str) -> tuple[float, float] | None:
        return self.spans[name][0] if self.spans.get(name) else None

    def total(self, name: str) -> float:
        return sum(b - a for a, b in self.spans.get(name, []))


@contextlib.contextmanager
def driver_timers() -> Iterator[DriverMarks]:
    """Wrap a few driver-side calls with wall-clock timers; restore them afterwards."""
    import ray
    from ray import tune

    from rnnlab.sweep import tracking

    marks = DriverMarks()
    targets: list[tuple[Any, str, str]] = [
        (ray, "init", "ray.init"),
        (ray, "shutdown", "ray.shutdown"),
        (tune.Tuner, "fit", "Tuner.fit"),
        (tracking.LoopbackServer, "start", "mlflow.start"),
        (tracking.LoopbackServer, "wait", "mlflow.wait"),
    ]
    originals = [(owner, attr, getattr(owner, attr)) for owner, attr, _ in targets]

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            start = time.time()
            try:
                return fn(*args, **kwargs)
            finally:
                marks.spans.setdefault(name, []).append((start, time.time()))
                if name == "ray.init" and marks.ray_logs is None:
                    with contextlib.suppress(Exception):  # a private API: best effort
                        node = ray._private.worker._global_node
                        marks.ray_logs = Path(node.get_logs_dir_path())

        return wrapper

    for (owner, attr, name), (_o, _a, fn) in zip(targets, originals, strict=True):
        setattr(owner, attr, timed(name, fn))
    try:
        yield marks
    finally:
        for owner, attr, fn in originals:
            setattr(owner, attr, fn)


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})")


def _log_time(line: str) -> float | None:
    m = _LOG_TIME.match(line)
    if not m:
        return None
    return dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


@dataclass
class WorkerLife:
    """One Ray worker process, from Ray's own logs."""

    pid: int
    started: float | None = None  # the raylet started the process
    connected: float | None = None  # Python up, Ray imported, core worker constructed
    actor_created: float | None = None  # trainable actor ready (training stack imported)


def worker_lives(logs: Path | None) -> dict[int, WorkerLife]:
    out: dict[int, WorkerLife] = {}
    if logs is None or not logs.is_dir():
        return out
    started = re.compile(r"Started worker process with pid (\d+)")
    with contextlib.suppress(OSError):
        for line in (logs / "raylet.out").read_text(errors="replace").splitlines():
            m = started.search(line)
            if m:
                pid = int(m.group(1))
                out[pid] = WorkerLife(pid, started=_log_time(line))
    for pid, life in out.items():
        for path in logs.glob(f"python-core-worker-*_{pid}.log"):
            with contextlib.suppress(OSError):
                for line in path.read_text(errors="replace").splitlines():
                    if "Constructing CoreWorkerProcess" in line:
                        life.connected = _log_time(line)
                    elif "Actor creation task finished" in line and life.actor_created is None:
                        life.actor_created = _log_time(line)
    return out


# --- reading what Tune and MLflow recorded -------------------------------------------------------
def driver_receipt_times(trial_dir: Path) -> dict[int, float]:
    """training_iteration -> when the driver logged that result (Tune's TensorBoard events)."""
    try:
        from tensorboardX.proto import event_pb2
    except ImportError:
        return {}
    out: dict[int, float] = {}
    for path in trial_dir.glob("events.out.tfevents.*"):
        data = path.read_bytes()
        i = 0
        # TFRecord: uint64 length, uint32 crc, payload, uint32 crc
        while i + 12 <= len(data):
            (n,) = struct.unpack_from("<Q", data, i)
            payload = data[i + 12 : i + 12 + n]
            i += 12 + n + 4
            event = event_pb2.Event.FromString(payload)
            if event.HasField("summary"):
                out[event.step] = min(out.get(event.step, event.wall_time), event.wall_time)
    return out


def mlflow_runs(store: Path, sweep: str) -> dict[str, tuple[float, float | None]]:
    """trial id -> (child run start, end) in seconds since the epoch."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    exp = client.get_experiment_by_name("rnnlab")
    if exp is None:
        return {}
    out: dict[str, tuple[float, float | None]] = {}
    for run in client.search_runs(
        [exp.experiment_id], filter_string=f"tags.`rnnlab.sweep` = '{sweep}'", max_results=1000
    ):
        trial_id = run.data.tags.get("rnnlab.trial_id")
        if trial_id:
            end = run.info.end_time / 1000 if run.info.end_time else None
            out[trial_id] = (run.info.start_time / 1000, end)
    return out


_REQUEST = re.compile(r'"(GET|POST|PATCH|DELETE) (/[^ ?"]*)')


def mlflow_requests(log: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    if log.exists():
        for line in log.read_text(errors="replace").splitlines():
            m = _REQUEST.search(line)
            if m:
                counts[m.group(2).replace("/api/2.0/mlflow/", "")] += 1
    return counts


@dataclass
class Trial:
    trial_id: str
    pid: int
    start: float  # worker function start (driver receipt of result 1 - its time_this_iter_s)
    end: float  # driver receipt of the trial's last result
    time: float  # Tune's time_total_s: function time without the driver's pauses
    epochs: int
    epoch_time: float  # pure training: the epochs alone
    lead_in: float  # function start -> first training step (run open, data, model, trainer)
    lead_out: float  # last epoch -> final report (recording the result)
    run_start: float | None = None  # MLflow child run created (worker)
    run_end: float | None = None  # MLflow child run closed (driver)
    first_on_worker: bool = False
    lane: int = 0
    gap_before: float | None = None

    @property
    def stalls(self) -> float:
        return (self.end - self.start) - self.time

    @property
    def first_step(self) -> float:
        return self.start + self.lead_in


def read_trials(folder: Path, runs: dict[str, tuple[float, float | None]]) -> list[Trial]:
    trials = []
    for trial_dir, rows in trial_rows(folder).items():
        receipt = driver_receipt_times(trial_dir)
        if not receipt:  # no tensorboardX: Tune's own timestamps (whole seconds only)
            receipt = {int(r["training_iteration"]): float(r["timestamp"]) for r in rows}
        first, last = rows[0], rows[-1]
        epochs = epoch_rows(rows)
        iters = [float(r["time_this_iter_s"]) for r in epochs]
        if len(iters) > 1:  # the first epoch's own share: the mean of the others
            per_epoch = statistics.fmean(iters[1:])
            epoch_time, lead_in = sum(iters[1:]) + per_epoch, iters[0] - per_epoch
        else:  # one epoch (or none: diverged in the first): no way to split off the lead-in
            epoch_time, lead_in = (iters[0] if iters else 0.0), 0.0
        start = receipt[int(first["training_iteration"])] - float(first["time_this_iter_s"])
        run_start, run_end = runs.get(str(first["trial_id"]), (None, None))
        trials.append(
            Trial(
                trial_id=str(first["trial_id"]),
                pid=int(first["pid"]),
                start=start,
                end=receipt[int(last["training_iteration"])],
                time=float(last["time_total_s"]),
                epochs=len(epochs),
                epoch_time=epoch_time,
                lead_in=lead_in,
                lead_out=float(last["time_this_iter_s"]) if last.get("rnnlab_done") else 0.0,
                run_start=run_start,
                run_end=run_end,
            )
        )
    trials.sort(key=lambda t: t.start)
    return trials


def assign_lanes(trials: list[Trial], lanes: int) -> list[list[Trial]]:
    """Put each trial on the worker slot it ran on: its pid's lane, else the slot freed last."""
    out: list[list[Trial]] = [[] for _ in range(lanes)]
    seen: set[int] = set()
    for t in trials:
        free = [i for i, lane in enumerate(out) if not lane or lane[-1].end <= t.start + 0.5]
        same = [i for i in free if out[i] and out[i][-1].pid == t.pid]
        if same:
            i = same[0]
        elif free:
            i = max(free, key=lambda j: out[j][-1].end if out[j] else -1.0)
        else:
            i = min(range(lanes), key=lambda j: out[j][-1].end)
        t.lane = i
        t.first_on_worker = t.pid not in seen
        seen.add(t.pid)
        if out[i]:
            t.gap_before = t.start - out[i][-1].end
        out[i].append(t)
    return out


# --- the benchmark -------------------------------------------------------------------------
def overrides_for(args: argparse.Namespace, name: str) -> list[str]:
    task = QUICK_TASK if args.quick else FULL_TASK
    return [
        *task,
        f"train.max_epochs={args.epochs}",
        "search=lr_clip",
        # lr <= 1e-2 with norm clipping: no trial diverges and ends early
        "search.params.train.lr.high=0.01",
        f"sweep.trials={args.trials}",
        f"sweep.max_concurrent={args.concurrent}",
        "hardware.cpus_per_trial=1",
        "sweep.scheduler=none",
        "sweep.final_seeds=0",
        f"sweep.seed={args.seed}",
        "sweep.progress=false",
        f"sweep.name={name}",
    ]


def report(
    args: argparse.Namespace,
    folder: Path,
    summary: Any,
    marks: DriverMarks,
    started: float,
    returned: float,
    loads: tuple[str, str],
) -> dict[str, Any]:
    sweep_folder = Path(summary.folder)
    fit_start, fit_end = marks.first("Tuner.fit") or (started, returned)
    wall = fit_end - fit_start
    trials = read_trials(sweep_folder, mlflow_runs(folder / "mlflow.db", summary.name))
    lanes = assign_lanes(trials, args.concurrent)
    reused_lead_in = [t.lead_in for t in trials if not t.first_on_worker]
    typical_lead_in = statistics.median(reused_lead_in) if reused_lead_in else 0.0

    # Per lane: the search wall = start-up + trial time + report pauses + gaps + idle tail.
    keys = ["start-up", "trials", "reports", "gaps", "tail"]
    per_lane: list[dict[str, float]] = []
    for lane in lanes:
        if not lane:
            per_lane.append({"tail": wall})
            continue
        first = lane[0]
        excess = max(0.0, first.lead_in - typical_lead_in)
        per_lane.append(
            {
                "start-up": (first.start - fit_start) + excess,
                "trials": sum(t.time for t in lane) - excess,
                "reports": sum(t.stalls for t in lane),
                "gaps": sum(t.gap_before or 0.0 for t in lane),
                "tail": fit_end - lane[-1].end,
            }
        )
    mean = {k: statistics.fmean(lane.get(k, 0.0) for lane in per_lane) for k in keys}
    ideal = mean["trials"]  # (sum of trial times, a fresh worker's imports moved out) / lanes
    ratio = wall / ideal
    ratio_no_startup = (wall - mean["start-up"]) / ideal
    epoch_ideal = sum(t.epoch_time for t in trials) / args.concurrent

    setup = fit_start - started
    teardown = returned - fit_end
    gaps = [t.gap_before for t in trials if t.gap_before is not None]
    closes = [t.run_end - t.end for t in trials if t.run_end is not None]
    opens = [
        t.run_start - t.start
        for t in trials
        if t.run_start is not None and t.first_on_worker is False
    ]
    reports = sum(t.epochs + 1 for t in trials)
    requests = mlflow_requests(sweep_folder / "mlflow-server.log")
    lives = worker_lives(marks.ray_logs)
    workers = sorted({t.pid for t in trials})

    def rel(x: float | None) -> str:
        return "?" if x is None else f"{x - fit_start:+.1f}"

    def median(xs: list[float]) -> float:
        return statistics.median(xs) if xs else float("nan")

    p = print
    p()
    what = "tiny adding task" if args.quick else "adding T=100, LSTM 64"
    p(
        f"sweep bookkeeping: {len(trials)} trials of {what}, {args.epochs} epochs, "
        f"{args.concurrent} at a time, 1 CPU each, workers reused, no scheduler"
    )
    p(f"machine: {machine_line()}")
    p(f"load (1/5/15 min): before {loads[0]}, after {loads[1]}")
    p(f"outcomes: {', '.join(f'{n} {k}' for k, n in sorted(summary.counts.items()))}")
    p()
    p("times in s; start: from the search start; open: function start -> MLflow run created;")
    p("lead_in: function start -> first training step; pauses: driver round trips between reports")
    p(" trial     lane  pid     gap  start  open  lead_in  epochs  lead_out  trial  pauses")
    for t in trials:
        gap = "-" if t.gap_before is None else f"{t.gap_before:.2f}"
        opened = "-" if t.run_start is None else f"{t.run_start - t.start:.2f}"
        p(
            f" {t.trial_id}  {t.lane:>4}  {t.pid:<6} {gap:>5}  {t.start - fit_start:5.1f}  "
            f"{opened:>4}  {t.lead_in:7.2f}  {t.epoch_time:6.2f}  {t.lead_out:8.2f}  "
            f"{t.time:5.2f}  {t.stalls:6.2f}"
        )
    p()
    mlflow_start = marks.first("mlflow.start")
    mlflow_wait = marks.first("mlflow.wait")
    p(f"fixed set-up (run_sweep start -> search start)  {setup:6.1f} s")
    ray_init = marks.first("ray.init")
    if ray_init:
        p(f"  before ray.init (store, experiment, server)   {ray_init[0] - started:6.1f} s")
        p(f"  ray.init                                      {ray_init[1] - ray_init[0]:6.1f} s")
        p(f"  after ray.init (server wait, parent run)      {fit_start - ray_init[1]:6.1f} s")
    if mlflow_start and mlflow_wait:
        p(
            "  MLflow server start -> healthy                "
            f"{mlflow_wait[1] - mlflow_start[0]:6.1f} s"
            f"  (in parallel with ray.init; {marks.total('mlflow.wait'):.1f} s waited after it)"
        )
    p(f"search wall (Tuner.fit)                         {wall:6.1f} s")
    p(f"teardown (search end -> run_sweep returns)      {teardown:6.1f} s")
    p(f"  ray.shutdown                                  {marks.total('ray.shutdown'):6.1f} s")
    p(f"run_sweep total                                 {returned - started:6.1f} s")
    p()
    p(
        f"trial time median {median([t.time for t in trials]):.2f} s "
        f"(min {min(t.time for t in trials):.2f}, max {max(t.time for t in trials):.2f}); "
        f"epochs alone {median([t.epoch_time for t in trials]):.2f} s; "
        f"lead-in {typical_lead_in:.2f} s and "
        f"lead-out {median([t.lead_out for t in trials]):.2f} s "
        "on a reused worker"
    )
    p(
        f"worker processes: {len(workers)} ran trials (pids {', '.join(map(str, workers))}); "
        f"Ray started {len(lives) or '?'} worker processes in all"
    )
    for pid in workers:
        first = next(t for t in trials if t.pid == pid)
        life = lives.get(pid, WorkerLife(pid))
        whole = "?" if life.started is None else f"{first.first_step - life.started:.1f} s"
        p(
            f"  pid {pid}: process started {rel(life.started)}, "
            f"Ray connected {rel(life.connected)}, "
            f"trainable actor ready {rel(life.actor_created)}, first trial function "
            f"{rel(first.start)}, first training step {rel(first.first_step)} "
            f"(process start -> first step {whole})"
        )
    p(
        f"MLflow HTTP requests: {sum(requests.values())} "
        f"({sum(requests.values()) / max(1, len(trials)):.1f} per trial): "
        + ", ".join(f"{k} {n}" for k, n in requests.most_common(7))
    )
    p()
    p("search wall, per lane (mean of the lanes)     seconds  share")
    labels = {
        "start-up": "worker start-up",
        "trials": "trial time (the ideal)",
        "reports": f"report round trips ({reports} reports)",
        "gaps": f"between trials ({len(gaps)} gaps)",
        "tail": "idle tail (other lane still busy)",
    }
    for k in keys:
        p(f"  {labels[k]:<42} {mean[k]:6.1f}  {mean[k] / wall:6.1%}")
    p(
        "  a report round trip: "
        f"{1000 * mean['reports'] * args.concurrent / max(1, reports):.0f} ms; "
        f"a gap: median {median(gaps):.2f} s, of which last report -> run closed by the driver "
        f"{median(closes):.2f} s"
    )
    p(f"  function start -> MLflow run created (reused worker): median {median(opens):.2f} s")
    p()
    p(f"ideal = sum of trial times / {args.concurrent} = {ideal:.1f} s")
    p(f"ratio search wall / ideal:                 {ratio:.3f}  (target <= {TARGET_RATIO})")
    p(f"ratio without worker start-up:             {ratio_no_startup:.3f}")
    p(f"ratio search wall / (epoch time / {args.concurrent}):      {wall / epoch_ideal:.3f}")
    p(f"ratio run_sweep total / ideal:             {(returned - started) / ideal:.3f}")
    return {
        "ratio": ratio,
        "ratio_no_startup": ratio_no_startup,
        "wall": wall,
        "ideal": ideal,
        "setup": setup,
        "teardown": teardown,
        "workers": len(workers),
        "components": mean,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=None, help="default 20 (quick: 4)")
    parser.add_argument("--epochs", type=int, default=None, help="default 8 (quick: 2)")
    parser.add_argument("--concurrent", type=int, default=2, help="sweep.max_concurrent")
    parser.add_argument("--seed", type=int, default=0, help="sampler seed")
    parser.add_argument("--quick", action="store_true", help="4 tiny trials: a smoke run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    args.trials = args.trials or (4 if args.quick else 20)
    args.epochs = args.epochs or (2 if args.quick else 8)

    from rnnlab.sweep.runner import run_sweep

    print(f"date: {dt.datetime.now().isoformat(timespec='seconds')}; command: {' '.join(sys.argv)}")
    load_before = load_line()
    with in_temp_dir(args.keep, "rnnlab-bench-bookkeeping-") as folder:
        plan = prepare_sweep(overrides_for(args, "bookkeeping"))
        with driver_timers() as marks:
            started = time.time()
            summary = run_sweep(plan)
            returned = time.time()
        report(args, folder, summary, marks, started, returned, (load_before, load_line()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
