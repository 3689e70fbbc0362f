"""Refusing a bad config, printing one, or planning a sweep never waits for torch to import.

Importing torch and Lightning costs seconds; a one-line error, `--cfg` and the sweep driver
(which never trains) must not pay it for a built-in task and a built-in model. Each check runs
in a fresh interpreter, since this one has long since imported torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# Runs in `tmp_path`; prints one JSON line: the first step after which torch or Lightning
# was imported (null if none was), the exit codes of the CLI calls and every error message.
_SCRIPT = r"""
import contextlib, io, json, sys
from pathlib import Path

HEAVY = ("torch", "pytorch_lightning")
report = {"first_heavy_step": None, "codes": {}, "errors": {}}

def step(name, fn):
    from rnnlab.config import ConfigError
    try:
        fn()
    except ConfigError as exc:
        report["errors"][name] = str(exc)
    finally:
        if report["first_heavy_step"] is None and any(m in sys.modules for m in HEAVY):
            report["first_heavy_step"] = name

def cli(name, *argv):
    from rnnlab.cli import main
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        report["codes"][name] = main(list(argv))
    report["errors"][name] = err.getvalue().strip()

from rnnlab.cli import check_ready, load_run_config
from rnnlab.composition import group_options
from rnnlab.sweep.plan import build_plan

tasks = [t for t in group_options("task") if t != "custom"]
cfgs = {}
for task in tasks:
    step(f"validate {task}", lambda: cfgs.update({task: load_run_config("train", [f"task={task}"])}))
    # A packaged data file this machine lacks is refused (ConfigError), which is fine here.
    step(f"check {task}", lambda: check_ready(cfgs[task]))
step("plan default", lambda: build_plan(["sweep.trials=2"]))
# Tasks whose metric used to be read off a built task, which needed its data or the user's file.
for task in ("ptb_char", "csv_series"):
    step(f"plan {task}", lambda: build_plan(["sweep.trials=2", f"task={task}"], probe=False))

Path("short.csv").write_text("sales\n" + "1\n" * 10)
Path("one_label.csv").write_text("text,label\nhi,a\nho,a\nhey,a\n")
Path("bad.conll").write_text("The DT\ncat XX\n")
# The task is validated before the rest, so one task suffices for what follows it.
for name, argv in {
    "--cfg": ["train", "--cfg"],
    "dropout": ["train", "model.dropout=1.5"],
    "sweep dropout": ["sweep", "model.dropout=1.5"],
    "csv no path": ["train", "task=csv_series"],
    "csv short": ["train", "task=csv_series", "task.path=short.csv"],
    "one label": ["train", "task=text_classification", "task.path=one_label.csv"],
    "bad tag": ["train", "task=conll_tagging", "task.path=bad.conll", "task.tag_column=1",
                "task.tags=[DT,NN]"],
    "sweep csv no path": ["sweep", "task=csv_series"],
    "unknown task": ["train", "task.name=nope"],
    "eval no store": ["eval", "0123abcd"],
}.items():
    step(name, lambda: cli(name, *argv))
print(json.dumps(report))
"""


def test_validating_checking_and_planning_builtin_tasks_import_neither_torch_nor_lightning(
    tmp_path: Path,
) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["first_heavy_step"] is None
    codes, errors = report["codes"], report["errors"]
    assert not {k: v for k, v in errors.items() if k.startswith(("validate", "plan"))}
    assert codes.pop("--cfg") == 0
    assert all(v == 2 for v in codes.values()), codes
    # The refusals are the ones meant, not some other error on the way.
    assert "model.dropout=1.5: must be in [0, 1)" in errors["dropout"]
    assert "model.dropout=1.5: must be in [0, 1)" in errors["sweep dropout"]
    assert "task.path is required" in errors["csv no path"]
    assert "10 values leave no train window" in errors["csv short"]
    assert "has 1 label(s)" in errors["one label"]
    assert "unknown tag 'XX'" in errors["bad tag"]
    assert "task.path is required" in errors["sweep csv no path"]
    assert "unknown task; valid tasks: adding, " in errors["unknown task"]
    assert "no MLflow store" in errors["eval no store"]
