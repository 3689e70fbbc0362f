"""`rnnlab sweep` / `rnnlab sweeps` as a user runs them, for everything refused before Ray starts.

Each test runs the real command in an empty temporary directory and checks what a user sees:
the exit code, one line on stderr, and that nothing was created (no mlflow.db, no
rnnlab-sweeps/, no mlruns/). No test here starts Ray or trains anything.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from rnnlab.composition import group_options
from rnnlab.sweep.state import SweepRecord


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr}"
    return lines[0]


def _existing_sweep(folder: Path, name: str) -> Path:
    """A sweep folder as a finished `rnnlab sweep` leaves it, written by hand (no Ray)."""
    sweep = folder / "rnnlab-sweeps" / name
    SweepRecord(
        name=name,
        folder=str(sweep),
        status="finished",
        tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
        experiment="rnnlab",
        experiment_id="1",
        parent_run_id="0" * 32,
        metric="val/mse",
        mode="min",
        trials=4,
    ).save()
    return sweep


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        pytest.param(
            ["+search.params.model.nope={choices: [1, 2]}"],
            ["search.params.model.nope", "no such config key"],
            id="unknown-searched-key",
        ),
        pytest.param(
            ["search.params.model.dropout.low=0.9"],
            ["search.params.model.dropout", "low=0.9", "high=0.6"],
            id="low-above-high",
        ),
        pytest.param(
            ["sweep.sampler=bogus"],
            ["sweep.sampler='bogus'", "tpe"],
            id="unknown-sampler",
        ),
        pytest.param(
            ["search=nope"],
            ["search='nope'", "init_dropout_clip", "lr_clip"],
            id="unknown-search-space",
        ),
    ],
)
def test_bad_sweep_input_exits_2_with_one_line_and_creates_nothing(
    run_cli, tmp_path: Path, overrides: list[str], needles: list[str]
) -> None:
    rc, _out, err = run_cli(tmp_path, "sweep", *overrides, timeout=120)
    assert rc == 2, err
    line = _one_line(err)
    assert line.startswith("rnnlab sweep: error: ")
    for needle in needles:
        assert needle in line, f"{needle!r} not in {line!r}"
    assert _files(tmp_path) == []


def test_sweep_help_lists_the_search_spaces_and_other_groups(run_cli, tmp_path: Path) -> None:
    rc, out, err = run_cli(tmp_path, "sweep", "--help", timeout=60)
    assert rc == 0, err
    (search_line,) = [line for line in out.splitlines() if line.strip().startswith("search ")]
    for option in group_options("search"):
        assert option in search_line
    for group in ("model", "task", "hardware", "tracking"):
        assert any(line.strip().startswith(group + " ") for line in out.splitlines())
    assert _files(tmp_path) == []


def test_sweep_cfg_prints_the_sweep_and_search_sections_and_creates_nothing(
    run_cli, tmp_path: Path
) -> None:
    rc, out, err = run_cli(tmp_path, "sweep", "--cfg", "sweep.trials=7", timeout=120)
    assert rc == 0, err
    shown = yaml.safe_load(out)
    assert shown["sweep"]["trials"] == 7
    assert shown["search"]["name"] == "init_dropout_clip"
    assert shown["search"]["groups"] == {"model": ["rnn", "lstm"]}
    assert shown["search"]["params"]["train"]["clip"]["threshold"]["when"] == {
        "train.clip.mode": "norm"
    }
    assert "model" in shown and "task" in shown
    assert _files(tmp_path) == []


def test_new_sweep_under_an_existing_name_is_refused_with_the_resume_command(
    run_cli, tmp_path: Path
) -> None:
    _existing_sweep(tmp_path, "taken")
    before = _files(tmp_path)
    rc, _out, err = run_cli(tmp_path, "sweep", "sweep.name=taken", timeout=120)
    assert rc == 2, err
    line = _one_line(err)
    assert "taken" in line
    assert "already exists" in line
    assert "rnnlab sweep sweep.name=taken sweep.resume=true" in line
    assert _files(tmp_path) == before


def test_resuming_an_unknown_sweep_says_there_is_no_such_sweep(run_cli, tmp_path: Path) -> None:
    rc, _out, err = run_cli(tmp_path, "sweep", "sweep.name=ghost", "sweep.resume=true", timeout=120)
    assert rc == 2, err
    line = _one_line(err)
    assert "no sweep named 'ghost'" in line
    assert "rnnlab sweeps" in line
    assert _files(tmp_path) == []


def test_resuming_with_a_changed_search_is_refused_in_one_line(run_cli, tmp_path: Path) -> None:
    _existing_sweep(tmp_path, "fixed")
    before = _files(tmp_path)
    rc, _out, err = run_cli(
        tmp_path, "sweep", "sweep.name=fixed", "sweep.resume=true", "search=lr_clip", timeout=120
    )
    assert rc == 2, err
    line = _one_line(err)
    assert "search=lr_clip" in line
    assert "rnnlab sweep sweep.name=fixed sweep.resume=true" in line
    assert _files(tmp_path) == before


def test_unreachable_tracking_server_fails_in_seconds_with_one_line_and_creates_nothing(
    run_cli, tmp_path: Path
) -> None:
    # Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    # MLflow's own client would retry for about 4 minutes; the pre-flight probe (2 s timeout)
    # must answer first. The 10 s include interpreter start-up and composing the config.
    started = time.monotonic()
    rc, _out, err = run_cli(
        tmp_path, "sweep", "tracking=server", "tracking.uri=http://127.0.0.1:9", timeout=60
    )
    elapsed = time.monotonic() - started
    assert rc != 0
    line = _one_line(err)
    assert "http://127.0.0.1:9" in line
    assert "unreachable" in line
    assert elapsed < 10, f"took {elapsed:.1f} s"
    assert _files(tmp_path) == []


def test_sweeps_in_an_empty_directory_says_there_are_none(run_cli, tmp_path: Path) -> None:
    rc, out, err = run_cli(tmp_path, "sweeps", timeout=60)
    assert rc == 0, err
    assert "no sweeps" in out
    assert _files(tmp_path) == []
