"""Where the shipped configs live, whether rnnlab runs from a wheel or a source checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    raise FileNotFoundError(
        f"rnnlab cannot find its shipped configs (looked in {', '.join(map(str, candidates))}); "
        "reinstall the package"
    )


def conf_dir() -> Path:
    """`conf/`: inside the package in a wheel, at the repo root in an editable install."""
    return _first_existing(_PACKAGE_DIR / "conf", _PACKAGE_DIR.parents[1] / "conf")


def experiments_dir() -> Path:
    """`experiments/`: named experiment configs, found the same way as `conf/`."""
    return _first_existing(_PACKAGE_DIR / "experiments", _PACKAGE_DIR.parents[1] / "experiments")
