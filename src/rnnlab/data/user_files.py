"""Read the user's own data files, turning every problem with them into one ConfigError line.

The CLI calls a task's `check()` before it creates any run, and turns ConfigError into one
line on stderr and exit 2; so every message here names the config key, the file, the line
when there is one, and what would be valid.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from pathlib import Path

from rnnlab.config import ConfigError

Row = tuple[int, dict[str, str]]  # (line number, fields)


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
