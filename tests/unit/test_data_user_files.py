"""Bring-your-own tasks read CSV, JSONL and CoNLL files, and say in one line what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rnnlab.config import ConfigError
from rnnlab.data import cache
from rnnlab.data.forecast import CsvSeriesConfig, CsvSeriesDataModule
from rnnlab.data.tagging import ConllTaggingConfig, ConllTaggingDataModule, parse_conll
from rnnlab.data.text_classification import (
    TextClassificationConfig,
    UserTextClassificationDataModule,
)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cache.CACHE_DIR_ENV, str(tmp_path / "cache"))


def _texts(tmp_path: Path, n: int = 60, name: str = "texts.csv") -> Path:
    path = tmp_path / name
    lines = ["text,label"]
    for i in range(n):
        label = "pos" if i % 2 else "neg"
        lines.append(f'"{"good fine" if label == "pos" else "bad awful"} word{i}",{label}')
    path.write_text("\n".join(lines) + "\n")
    return path


def _text_module(**fields: object) -> UserTextClassificationDataModule:
    cfg = TextClassificationConfig(min_freq=1, **fields)
    UserTextClassificationDataModule.check(cfg)
    return UserTextClassificationDataModule(cfg, batch_size=8, seed=0)


# --- text classification -------------------------------------------------------------------


def test_csv_texts_become_token_ids_with_one_label_each(tmp_path: Path) -> None:
    dm = _text_module(path=str(_texts(tmp_path)))
    spec = dm.spec
    assert (spec.head, spec.output_size, spec.padding_idx) == ("many_to_one", 2, 0)
    assert dm.labels == ["neg", "pos"]
    sizes = [len(dm.dataset(s)) for s in ("train", "val", "test")]
    assert sizes == [48, 6, 6]  # stratified 10% / 10%
    batch = next(iter(dm.train_dataloader()))
    assert batch.inputs.dtype == torch.long and batch.targets.shape == (8,)
    assert batch.lengths.tolist() == [3] * 8


def test_jsonl_with_its_own_field_names_and_separate_splits(tmp_path: Path) -> None:
    def write(name: str, n: int) -> Path:
        path = tmp_path / name
        rows = [{"body": f"text number {i}", "y": "a" if i % 2 else "b"} for i in range(n)]
        path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        return path

    dm = _text_module(
        path=str(write("train.jsonl", 20)),
        val_path=str(write("val.jsonl", 4)),
        test_path=str(write("test.jsonl", 6)),
        text_field="body",
        label_field="y",
    )
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [20, 4, 6]


def test_words_seen_only_outside_training_map_to_unknown(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\nknown words,a\nknown,b\n")
    other = tmp_path / "other.csv"
    other.write_text("text,label\nunseen known,a\n")
    dm = _text_module(path=str(train), val_path=str(other), test_path=str(other))
    ids = dm.dataset("test").inputs[0].tolist()
    assert ids == [dm.vocab.unk_id, dm.vocab.index["known"]]
    assert "unseen" not in dm.vocab


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        (None, {}, "task.path is required"),
        ("", {}, "the file is empty"),
        ("text,label\n", {}, "no data rows"),
        ("body,label\nhi,a\n", {}, "no column 'text' (columns: body, label)"),
        ("text,label\nhi,a\nho,\n", {}, "line 3 has an empty 'label'"),
        ("text,label\nhi,a\nho,c\n", {"labels": ["a", "b"]}, "line 3: unknown label 'c'"),
        ("text,label\nhi,a\nho,a\n", {}, "has 1 label(s)"),
        (b"text,label\nh\xffi,a\n", {}, "not UTF-8 text"),
    ],
)
def test_bad_text_files_are_one_line_config_errors(
    tmp_path: Path, content: str | bytes | None, fields: dict, message: str
) -> None:
    path = None
    if content is not None:
        path = tmp_path / "t.csv"
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    cfg = TextClassificationConfig(path=str(path) if path else None, **fields)
    with pytest.raises(ConfigError) as err:
        UserTextClassificationDataModule.check(cfg)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_names_the_key_and_the_path(tmp_path: Path) -> None:
    cfg = TextClassificationConfig(path=str(tmp_path / "nope.csv"))
    with pytest.raises(ConfigError, match=r"task.path='.*nope.csv': no such file"):
        UserTextClassificationDataModule.check(cfg)


def test_a_label_only_in_the_given_test_file_is_refused(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    train.write_text("text,label\nx,a\ny,b\n")
    test = tmp_path / "test.csv"
    test.write_text("text,label\nz,c\n")
    cfg = TextClassificationConfig(path=str(train), val_path=str(train), test_path=str(test))
    with pytest.raises(ConfigError, match="label 'c' does not occur in the training data"):
        UserTextClassificationDataModule.check(cfg)


# --- CoNLL tagging -------------------------------------------------------------------------


CONLL = """-DOCSTART- O

The DT B-NP
cat NN I-NP
sat VBD O

A DT B-NP
dog NN I-NP
"""


def test_conll_files_give_one_tag_per_token_and_skip_docstart() -> None:
    sentences = parse_conll(CONLL, "f", token_column=0, tag_column=1)
    assert sentences == [(["The", "cat", "sat"], ["DT", "NN", "VBD"]), (["A", "dog"], ["DT", "NN"])]
    assert parse_conll(CONLL, "f", 0, -1)[0][1] == ["B-NP", "I-NP", "O"]


def test_conll_task_pads_tags_with_ignore_index(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_text(CONLL * 10)
    cfg = ConllTaggingConfig(path=str(path), tag_column=1, min_freq=1)
    ConllTaggingDataModule.check(cfg)
    dm = ConllTaggingDataModule(cfg, batch_size=4, seed=0)
    assert dm.tags == ["DT", "NN", "VBD"] and dm.spec.head == "many_to_many"
    for batch in dm.train_dataloader():
        for row, n in enumerate(batch.lengths.tolist()):
            assert (batch.targets[row, n:] == -100).all()
            assert (batch.targets[row, :n] >= 0).all()


@pytest.mark.parametrize(
    ("content", "fields", "message"),
    [
        ("The DT\ncat\n", {}, r"line 2 has 1 column\(s\)"),
        ("\n\n-DOCSTART- O\n", {}, "no tagged tokens found"),
        ("The DT\ncat XX\n", {"tags": ["DT", "NN"]}, "unknown tag 'XX'"),
    ],
)
def test_bad_conll_files_are_one_line_config_errors(
    tmp_path: Path, content: str, fields: dict, message: str
) -> None:
    path = tmp_path / "bad.conll"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        ConllTaggingDataModule.check(ConllTaggingConfig(path=str(path), **fields))


# --- CSV series ----------------------------------------------------------------------------


def _series(tmp_path: Path, values: list[str], header: str = "sales") -> Path:
    path = tmp_path / "series.csv"
    path.write_text("\n".join([header, *values]) + "\n")
    return path


def test_csv_series_windows_never_let_targets_cross_a_split(tmp_path: Path) -> None:
    path = _series(tmp_path, [str(float(i)) for i in range(100)])
    cfg = CsvSeriesConfig(path=str(path), context=5, horizon=3, season=1)
    CsvSeriesDataModule.check(cfg)
    dm = CsvSeriesDataModule(cfg, batch_size=16, seed=0)
    spec = dm.spec
    assert (spec.output_size, spec.input_size, spec.monitor) == (3, 1, "val/mase")
    facts = dm.describe()
    mean, std = facts["train_mean"], facts["train_std"]
    _, train_y = dm.dataset("train").tensors
    test_x, test_y = dm.dataset("test").tensors
    # Values are standardised with the training part only (rows 0..69 of 100).
    assert mean == pytest.approx(34.5)
    raw_train_targets = train_y * std + mean
    raw_test_targets = test_y * std + mean
    assert raw_train_targets.max() < 70 - 0.5
    assert raw_test_targets.min() > 85 - 0.5
    # Each window's context ends right before its targets start.
    torch.testing.assert_close(test_x[:, -1, 0] + 1 / std, test_y[:, 0])


def test_a_linear_trend_has_naive_mase_of_one_and_the_spec_carries_the_scale(
    tmp_path: Path,
) -> None:
    path = _series(tmp_path, [str(2.0 * i) for i in range(60)])
    cfg = CsvSeriesConfig(path=str(path), context=4, horizon=1, season=1)
    dm = CsvSeriesDataModule(cfg, batch_size=8, seed=0)
    spec = dm.spec
    # The naive forecast is off by one step everywhere, which is exactly the scale.
    assert spec.baselines["mase"] == pytest.approx(1.0)
    assert spec.mase_scale == pytest.approx(spec.baselines["mae"])


@pytest.mark.parametrize(
    ("values", "header", "fields", "message"),
    [
        (["1", "2", "x"], "sales", {}, "line 4: 'x' in column 'sales' is not a number"),
        (["1", "", "3"], "sales", {}, "line 3 is blank"),
        (["1", "n/a", "3"], "sales", {}, "line 3: 'n/a' in column 'sales' is not a number"),
        (["1,2"], "a,b", {}, "task.column is required"),
        (["1"] * 10, "sales", {}, "10 values leave no train window"),
        (["1,2"] * 5, "a,b", {"column": "c"}, "no column 'c'"),
    ],
)
def test_bad_series_files_are_one_line_config_errors(
    tmp_path: Path, values: list[str], header: str, fields: dict, message: str
) -> None:
    path = _series(tmp_path, values, header)
    with pytest.raises(ConfigError, match=message):
        CsvSeriesDataModule.check(CsvSeriesConfig(path=str(path), **fields))


def test_csv_series_without_a_path_says_the_key_is_required() -> None:
    with pytest.raises(ConfigError, match=r"^task.path is required: a CSV file"):
        CsvSeriesDataModule.check(CsvSeriesConfig())
