"""Wall time of one whole `rnnlab` command, with and without rnnlab's collector policy.

The policy (src/rnnlab/collector.py): the console command pauses Python's cyclic garbage
collector during start-up, trains with the start-up objects frozen, and freezes the heap
before the process exits. Three ways run the same command in fresh processes, each in its
own empty directory, interleaved (the order rotates every repeat):

  default   `rnnlab.cli.main()`: Python's collector as it comes
  paused    `main()` inside `paused_for_startup()`: start-up pause only
  rnnlab    `rnnlab.cli.console_main()`: what the installed `rnnlab` command runs

    python benchmarks/cli_wall.py                      # 5 repeats of the default command
    python benchmarks/cli_wall.py --repeats 3 -- train model=gru task=copy train.max_epochs=1

Results and the commands that produced them: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

DEFAULT_COMMAND = ("train", "task=adding", "task.seq_len=30", "train.max_epochs=2")

DRIVERS = {
    "default": "import sys; from rnnlab.cli import main; sys.exit(main())",
    "paused": (
        "import sys; from rnnlab.cli import main; "
        "from rnnlab.collector import paused_for_startup\n"
        "with paused_for_startup():\n    code = main()\nsys.exit(code)"
    ),
    "rnnlab": "import sys; from rnnlab.cli import console_main; sys.exit(console_main())",
}
LABELS = {
    "default": "Python's default collector",
    "paused": "start-up pause only",
    "rnnlab": "rnnlab command (pause + exit freeze)",
}


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_once(way: str, command: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds from spawning the process to its exit; fails loudly if the
    command fails. CPU time (user + system, all threads) is what other load disturbs least."""
    with tempfile.TemporaryDirectory(prefix="rnnlab-cli-wall-") as work:
        cpu_start = _children_cpu_s()
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", DRIVERS[way], *command],
            cwd=work,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        elapsed = time.perf_counter() - start
        cpu = _children_cpu_s() - cpu_start
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"{way}: `rnnlab {' '.join(command)}` exited {proc.returncode}: {tail[0]}")
    return elapsed, cpu


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cli_wall.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per way (default 5)")
    parser.add_argument(
        "command", nargs="*", help=f"rnnlab arguments (default: {' '.join(DEFAULT_COMMAND)})"
    )
    args = parser.parse_args(argv)
    command = tuple(args.command) or DEFAULT_COMMAND
    ways = list(DRIVERS)
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(
        f"rnnlab command wall time, {now}; {platform.machine()}, {os.cpu_count()} CPUs; "
        f"python {platform.python_version()}; load average before "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"command: rnnlab {' '.join(command)}; {args.repeats} repeats per way, interleaved")
    wall: dict[str, list[float]] = {w: [] for w in ways}
    cpu: dict[str, list[float]] = {w: [] for w in ways}
    for r in range(args.repeats):
        order = ways[r % len(ways) :] + ways[: r % len(ways)]
        for way in order:
            w, c = run_once(way, command)
            wall[way].append(w)
            cpu[way].append(c)
    print(f"\n{'way':<38} {'wall s':>7} {'min':>6} {'max':>6} {'cpu s':>7} {'min':>6} {'max':>6}")
    for way in ways:
        w, c = wall[way], cpu[way]
        print(
            f"{LABELS[way]:<38} {statistics.median(w):>7.2f} {min(w):>6.2f} {max(w):>6.2f} "
            f"{statistics.median(c):>7.2f} {min(c):>6.2f} {max(c):>6.2f}"
        )
    for way in ways[1:]:
        rw = statistics.median(wall[way]) / statistics.median(wall["default"])
        rc = statistics.median(cpu[way]) / statistics.median(cpu["default"])
        print(f"ratio {way}/default: {rw:.3f}x wall, {rc:.3f}x cpu (medians)")
    print(f"load average after {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
