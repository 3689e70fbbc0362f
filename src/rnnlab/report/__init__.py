"""`rnnlab report NAME`: what a sweep found, as an HTML page and a terminal summary.

For cli.py: `add_arguments(subparser)` and `report_command(args)`. Or step by step:
`resolve_sweep_folder(name, root)` (ConfigError, one line, if unknown), then
`load_sweep_report(folder)` (Optuna study + MLflow child runs), then
`write_report(folder, top, report=report)` (returns report/index.html) and
`summary_text(report, top)`.
"""

from rnnlab.report.command import add_arguments, report_command
from rnnlab.report.data import SweepReport, TrialRow, load_sweep_report, resolve_sweep_folder
from rnnlab.report.page import summary_text, write_report

__all__ = [
    "SweepReport",
    "TrialRow",
    "add_arguments",
    "load_sweep_report",
    "report_command",
    "resolve_sweep_folder",
    "summary_text",
    "write_report",
]
