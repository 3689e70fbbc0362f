"""`python -m rnnlab.tracking.tether PARENT_PID -- CMD ...`: run CMD only while PARENT lives.

A sweep's loopback MLflow server must not outlive its driver, even when the driver is
killed with SIGKILL (no cleanup code runs then). The tether leads its own process group,
runs CMD in it, and kills the whole group once the parent is gone or on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return os.getppid() == pid


def _kill_group() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.killpg(os.getpgrp(), signal.SIGTERM)
        time.sleep(1.0)
    finally:
        os.killpg(os.getpgrp(), signal.SIGKILL)


def main(argv: list[str]) -> int:
    parent = int(argv[0])
    command = argv[2:] if argv[1:2] == ["--"] else argv[1:]
    child = subprocess.Popen(command)
    signal.signal(signal.SIGTERM, lambda *_: _kill_group())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    while True:
        code = child.poll()
        if code is not None:
            return code
        if not _alive(parent):
            _kill_group()
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
