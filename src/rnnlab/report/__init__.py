"""`rnnlab report NAME`: what a sweep found, as an HTML page and a terminal summary.

folder = resolve_sweep_folder(name, root)      # ConfigError (one line) if unknown
report = load_sweep_report(folder)             # Optuna study + MLflow child runs
index = write_report(folder, top, report=report)
print(summary_text(report, top))
"""

from rnnlab.report.data import SweepReport, TrialRow, load_sweep_report, resolve_sweep_folder
from rnnlab.report.page import summary_text, write_report

__all__ = [
    "SweepReport",
    "TrialRow",
    "load_sweep_report",
    "resolve_sweep_folder",
    "summary_text",
    "write_report",
]
