"""`rnnlab report NAME`: find the sweep, write its page, print the summary and where it is.

Arguments (argparse): `name` (a sweep name, or a sweep folder), `--root` (where sweep
folders live, default `rnnlab-sweeps`), `--top` (best configurations shown, default 5).
An unknown sweep is a one-line ConfigError, which the CLI turns into exit status 2.
"""

from __future__ import annotations

import argparse

from rnnlab.report.data import load_sweep_report, resolve_sweep_folder
from rnnlab.report.page import summary_text, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `report` subcommand's arguments, for cli.py's parser."""
    parser.add_argument("name", help="sweep name (see `rnnlab sweeps`) or sweep folder")
    parser.add_argument("--root", default="rnnlab-sweeps", help="folder holding the sweeps")
    parser.add_argument("--top", type=int, default=5, help="best configurations to show")


def report_command(args: argparse.Namespace) -> int:
    folder = resolve_sweep_folder(args.name, getattr(args, "root", "rnnlab-sweeps"))
    top = getattr(args, "top", 5)
    report = load_sweep_report(folder)
    index = write_report(folder, top, report=report)
    print(summary_text(report, top=min(top, 3)))
    print(f"  report: {index}")
    return 0
