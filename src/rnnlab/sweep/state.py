"""`sweep.json` in each sweep folder: what `rnnlab sweeps` lists and what resume reads.

Written atomically (temp file + rename) so a killed driver never leaves it half-written.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "sweep.json"


@dataclass
class SweepRecord:
    name: str
    folder: str
    status: str  # running | finished | interrupted | failed
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    metric: str
    mode: str
    trials: int
    overrides: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    pid: int = field(default_factory=os.getpid)
    host: str = field(default_factory=socket.gethostname)
    summary: dict[str, Any] | None = None

    def save(self) -> None:
        self.updated = time.time()
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".sweep-", suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump(asdict(self), fh, indent=2, sort_keys=True)
        os.replace(tmp, folder / STATE_FILE)

    @classmethod
    def load(cls, folder: Path) -> SweepRecord:
        data = json.loads((Path(folder) / STATE_FILE).read_text())
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})

    def effective_status(self) -> str:
        """A `running` sweep whose driver is gone was interrupted (e.g. killed)."""
        if self.status != "running":
            return self.status
        if self.host != socket.gethostname():
            return "running"
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return "interrupted"
        except PermissionError:
            return "running"
        return "running"


def list_sweeps(root: Path) -> list[SweepRecord]:
    if not root.is_dir():
        return []
    records = []
    for path in sorted(root.glob(f"*/{STATE_FILE}")):
        try:
            records.append(SweepRecord.load(path.parent))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(records, key=lambda r: r.created)
