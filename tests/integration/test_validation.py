"""Bad input to `rnnlab train` gets one line naming the key and value, exit code 2, and nothing
is created: no MLflow store, no `mlruns/`, no Hydra `outputs/`.

Most cases call `rnnlab.cli.main` in-process (each subprocess pays ~3 s of imports); one case
runs the real command to prove the exit status and the empty folder end to end.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.cli import main

# (override, substrings the one error line must contain)
BAD_INPUT = [
    ("model.dropout=1.5", ["model.dropout=1.5", "[0, 1)"]),
    ("model.hidden_size=0", ["model.hidden_size=0", "[1, "]),
    ("train.clip.threshold=-1", ["train.clip.threshold=-1", "> 0"]),
    ("train.lr=abc", ["train.lr='abc'", "must be a number"]),
    ("model=transformer", ["model='transformer'", "gru", "irnn", "lstm", "rnn"]),
    ("model.hiden_size=3", ["model.hiden_size", "unknown config key"]),
    ("+model.hiden_size=3", ["model.hiden_size", "unknown config key"]),
    ("experiment=nope", ["experiment='nope'", "adding_long", "copy_gru", "irnn_digits"]),
    ("train.limit_batches=0", ["train.limit_batches=0", ">= 1"]),
    ("train.limit_batches=1.5", ["train.limit_batches=1.5", "(0, 1]"]),
    ("train.limit_batches=true", ["train.limit_batches=True", "int"]),
    ("task=nope", ["task='nope'", "adding", "copy", "digits"]),
    ("model.init.recurrent=spiral", ["model.init.recurrent='spiral'", "orthogonal", "identity"]),
    ("train.optimizer=rmsprop", ["train.optimizer='rmsprop'", "adam"]),
    ("hardware.precision=16-mixed", ["hardware.precision=16-mixed", "bf16-mixed"]),
    ("train.max_epochs=1.5", ["train.max_epochs=1.5", "integer"]),
    ("task.seq_len=1", ["task.seq_len=1", ">= 2"]),
]


@pytest.mark.parametrize("override, expected", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_exits_2_with_one_line_naming_key_and_value_and_creates_nothing(
    override: str,
    expected: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    rc = main(["train", override])
    out, err = capsys.readouterr()
    assert rc == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("rnnlab train: error: ")
    for text in expected:
        assert text in lines[0], f"{text!r} missing from: {lines[0]}"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bad_input_from_the_real_command_exits_2_and_leaves_the_directory_empty(
    run_cli, tmp_path: Path
) -> None:
    rc, out, err = run_cli(tmp_path, "train", "model.dropout=1.5")
    assert rc == 2, err
    assert out == ""
    assert err.splitlines() == ["rnnlab train: error: model.dropout=1.5: must be in [0, 1)"]
    assert list(tmp_path.iterdir()) == []


def test_unknown_option_is_one_line_and_exit_2(run_cli, tmp_path: Path) -> None:
    rc, _, err = run_cli(tmp_path, "train", "--bogus")
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "--bogus" in err and "rnnlab train --help" in err
    assert list(tmp_path.iterdir()) == []
