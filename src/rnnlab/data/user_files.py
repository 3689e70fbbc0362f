"""Read the user's own data files, turning every problem with them into one ConfigError line.

The CLI calls a task config's `check_inputs()` before it creates any run, and turns
ConfigError into one line on stderr and exit 2; so every message here names the config key,
the file, the line when there is one, and what would be valid. Nothing here imports torch:
that check must answer in a fraction of a second, and the tasks turn what is read here into
tensors themselves.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab.config import ConfigError
from rnnlab.data.splits import split_sizes

if TYPE_CHECKING:
    from rnnlab.data.task_configs import (
        ConllTaggingConfig,
        CsvSeriesConfig,
        TextClassificationConfig,
    )

Row = tuple[int, dict[str, str]]  # (line number, fields)
Sentence = tuple[list[str], list[str]]  # (words, tags)
Record = tuple[str, str]  # (text, label)
CONLL_WHAT = "a token-per-line file with a token and a tag column"
TEXTS_WHAT = "a CSV or JSONL file with a text and a label field"
TEXTS_EXAMPLE = "data/texts.csv"


def require_file(path: str | None, key: str, what: str, example: str) -> Path:
    """The file at `path` (task.`key`), or ConfigError if it is unset, missing or empty."""
    if not path:
        raise ConfigError(f"task.{key} is required: {what}; e.g. task.{key}={example}")
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"task.{key}={path!r}: no such file")
    if not p.is_file():
        raise ConfigError(f"task.{key}={path!r}: not a file")
    if p.stat().st_size == 0:
        raise ConfigError(f"task.{key}={path!r}: the file is empty")
    return p


def read_text(p: Path, key: str) -> str:
    try:
        return p.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"task.{key}={str(p)!r}: not UTF-8 text (byte {exc.start}); save it as UTF-8"
        ) from None


def fingerprint(paths: Sequence[Path | None]) -> list[str]:
    """Identifies the files' contents for the processed-data cache (path, size, mtime)."""
    out = []
    for p in paths:
        if p is not None:
            st = p.stat()
            out.append(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return out


def csv_rows(p: Path, key: str, fields: Sequence[str]) -> Iterator[Row]:
    """Rows of a CSV file with a header, checking that the header has `fields`."""
    reader = csv.DictReader(io.StringIO(read_text(p, key), newline=""))
    header = reader.fieldnames or []
    if not header or not any(h.strip() for h in header):
        raise ConfigError(f"task.{key}={str(p)!r}: no header row")
    for field in fields:
        if field not in header:
            raise ConfigError(
                f"task.{key}={str(p)!r}: no column {field!r} (columns: {', '.join(header)})"
            )
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        yield reader.line_num, {f: (row.get(f) or "") for f in fields}


def jsonl_rows(p: Path, key: str, fields: Sequence[str]) -> Iterator[Row]:
    """Records of a JSON-lines file, checking that each has `fields`."""
    for number, line in enumerate(read_text(p, key).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"task.{key}={str(p)!r}: line {number} is not valid JSON ({exc.msg})"
            ) from None
        if not isinstance(record, dict):
            raise ConfigError(f"task.{key}={str(p)!r}: line {number} is not a JSON object")
        for field in fields:
            if field not in record:
                raise ConfigError(
                    f"task.{key}={str(p)!r}: line {number} has no field {field!r} "
                    f"(fields: {', '.join(map(str, record))})"
                )
        yield number, {f: "" if record[f] is None else str(record[f]) for f in fields}


def table_rows(p: Path, key: str, fields: Sequence[str], fmt: str = "auto") -> list[Row]:
    """All rows of a CSV or JSONL file (by `fmt`, or by the file's suffix); at least one."""
    if fmt == "auto":
        fmt = "jsonl" if p.suffix.lower() in (".jsonl", ".json", ".ndjson") else "csv"
    rows = list(jsonl_rows(p, key, fields) if fmt == "jsonl" else csv_rows(p, key, fields))
    if not rows:
        raise ConfigError(f"task.{key}={str(p)!r}: no data rows")
    return rows


# --- csv_series: one numeric column, a row per time step ---------------------------------------


def read_csv_series(cfg: CsvSeriesConfig) -> list[float]:
    """The user's column as floats; ConfigError (one line) for any problem with the file."""
    path = require_file(cfg.path, "path", "a CSV file with a row per time step", "data/series.csv")
    column = cfg.column
    if column is None:
        header = read_text(path, "path").splitlines()[0].split(",")
        if len(header) != 1:
            raise ConfigError(
                f"task.column is required: {str(path)!r} has {len(header)} columns "
                f"({', '.join(h.strip() for h in header)}); e.g. task.column={header[-1].strip()}"
            )
        column = header[0].strip()
    values = []
    previous = 1  # the header
    for line, row in csv_rows(path, "path", [column]):
        if line > previous + 1:  # the csv module skips blank lines: a gap in time
            raise ConfigError(
                f"task.path={str(path)!r}: line {previous + 1} is blank (a missing value?); "
                "fill it in or delete the line"
            )
        previous = line
        text = row[column].strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise ConfigError(
                f"task.path={str(path)!r}: line {line}: {text!r} in column {column!r} "
                "is not a number"
            )
        values.append(value)
    return values


# --- conll_tagging: token-per-line files --------------------------------------------------------


def parse_conll(text: str, where: str, token_column: int, tag_column: int) -> list[Sentence]:
    """Token-per-line columns; blank lines end sentences; `-DOCSTART-` lines are skipped."""
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    need = max(token_column if token_column >= 0 else -token_column - 1,
               tag_column if tag_column >= 0 else -tag_column - 1) + 1  # fmt: skip
    for number, line in enumerate(text.splitlines(), start=1):
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        if len(cols) < max(need, 2):
            raise ConfigError(
                f"{where}: line {number} has {len(cols)} column(s); token_column="
                f"{token_column} and tag_column={tag_column} need at least {max(need, 2)}"
            )
        words.append(cols[token_column])
        tags.append(cols[tag_column])
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise ConfigError(f"{where}: no tagged tokens found")
    return sentences


def read_conll_files(cfg: ConllTaggingConfig) -> dict[str, list[Sentence]]:
    """The user's sentences by the key of their file (`path`, and `val_path`/`test_path` if set).

    ConfigError (one line) for any problem with the files, a tag outside `task.tags` included.
    """
    files: dict[str, list[Sentence]] = {}
    for key in ("path", "val_path", "test_path"):
        value = getattr(cfg, key)
        if key == "path" or value:
            p = require_file(value, key, CONLL_WHAT, "data/train.conll")
            where = f"task.{key}={str(p)!r}"
            files[key] = parse_conll(read_text(p, key), where, cfg.token_column, cfg.tag_column)
    if cfg.tags is not None:
        allowed = set(cfg.tags)
        for key, sentences in files.items():
            for words, tags in sentences:
                bad = [t for t in tags if t not in allowed]
                if bad:
                    raise ConfigError(
                        f"task.{key}={getattr(cfg, key)!r}: unknown tag {bad[0]!r} (in "
                        f"'{' '.join(words[:8])}'); task.tags is {cfg.tags}"
                    )
    return files


# --- text_classification: a text and a label per row --------------------------------------------


def _read_labelled(path: Path, key: str, cfg: TextClassificationConfig) -> list[Record]:
    rows = table_rows(path, key, (cfg.text_field, cfg.label_field), cfg.format)
    records: list[Record] = []
    for line, row in rows:
        label = row[cfg.label_field].strip()
        if not label:
            raise ConfigError(
                f"task.{key}={str(path)!r}: line {line} has an empty {cfg.label_field!r}"
            )
        if cfg.labels is not None and label not in cfg.labels:
            raise ConfigError(
                f"task.{key}={str(path)!r}: line {line}: unknown label {label!r}; "
                f"task.labels is {cfg.labels}"
            )
        records.append((row[cfg.text_field], label))
    return records


def read_labelled_files(cfg: TextClassificationConfig) -> dict[str, list[Record]]:
    """The user's records by the key of their file (`path`, and `val_path`/`test_path` if set).

    ConfigError (one line) for any problem with the files, and for labels a classifier cannot
    learn: fewer than 2 in the training split, or one in a given val/test file it never saw.
    """
    files = {
        "path": _read_labelled(
            require_file(cfg.path, "path", TEXTS_WHAT, TEXTS_EXAMPLE), "path", cfg
        )
    }
    for key in ("val_path", "test_path"):
        value = getattr(cfg, key)
        if value:
            files[key] = _read_labelled(
                require_file(value, key, TEXTS_WHAT, TEXTS_EXAMPLE), key, cfg
            )
    if cfg.labels is not None:
        known = set(cfg.labels)
    elif len(files) == 3:  # `path` is all of the training split
        known = {label for _, label in files["path"]}
    else:  # the split is stratified: a label keeps training examples if its share does
        counts = Counter(label for _, label in files["path"])
        fractions = (cfg.val_fraction, cfg.test_fraction)
        known = {label for label, n in counts.items() if split_sizes(n, fractions)[0] > 0}
    if len(known) < 2:
        raise ConfigError(
            f"task.path={cfg.path!r}: the training data has {len(known)} label(s); "
            "classification needs at least 2"
        )
    for key in ("val_path", "test_path"):
        unseen = sorted({label for _, label in files.get(key, [])} - known)
        if unseen:
            raise ConfigError(
                f"task.{key}={getattr(cfg, key)!r}: label {unseen[0]!r} does not occur in the "
                f"training data (labels: {', '.join(sorted(known))}); set task.labels to allow it"
            )
    return files
