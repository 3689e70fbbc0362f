"""Length generalisation: the trained model tested at sequence lengths it never trained on.

The question behind the long-range probes (adding, copy, pixel digits) is whether a net
learned the rule or only the training length. With `task.eval_lengths=[...]`, after the usual
test the best checkpoint is tested again on each length's own test set, and the run gets
`by_length/<metric>` series whose MLflow step is the length (so the UI's metric chart is
metric-vs-length), a table `eval/by_length.json` and a plot `plots/metric_by_length.png`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl

METRIC_PREFIX = "by_length/"
TABLE_ARTIFACT = "eval/by_length.json"
PLOT_FILE = "metric_by_length.png"


def supports_lengths(datamodule: Any) -> bool:
    return hasattr(datamodule, "eval_dataloader") and hasattr(datamodule, "native_length")


def evaluate_lengths(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    datamodule: Any,
    lengths: list[int],
    ckpt_path: str | None,
    at_native: dict[str, float],
) -> dict[int, dict[str, float]]:
    """{length: {metric: value}} for the native length (from `at_native`) and each of `lengths`."""
    table = {datamodule.native_length: _strip(at_native)}
    for length in sorted(set(lengths) - {datamodule.native_length}):
        trainer.test(
            module,
            dataloaders=datamodule.eval_dataloader(length),
            ckpt_path=ckpt_path,
            verbose=False,
        )
        table[length] = _strip(trainer.callback_metrics)
    return dict(sorted(table.items()))


def _strip(metrics: Any) -> dict[str, float]:
    return {k.removeprefix("test/"): float(v) for k, v in metrics.items() if k.startswith("test/")}


def plot_by_length(
    table: dict[int, dict[str, float]],
    native_length: int,
    title: str,
    path: Path,
    baselines: dict[str, float] | None = None,
) -> Path | None:
    """One panel per metric: its value against the test length, the training length marked."""
    from matplotlib.figure import Figure

    names = sorted({name for row in table.values() for name in row})
    if not names:
        return None
    fig = Figure(figsize=(4.5 * len(names), 4), dpi=100, layout="constrained")
    axes = fig.subplots(1, len(names), squeeze=False)[0]
    lengths = list(table)
    for ax, name in zip(axes, names, strict=True):
        ax.plot(lengths, [table[n].get(name, float("nan")) for n in lengths], marker="o")
        ax.axvline(native_length, color="grey", ls="--", label=f"trained at {native_length}")
        if baselines and name in baselines:
            ax.axhline(
                baselines[name], color="grey", ls=":", label=f"baseline {baselines[name]:.3g}"
            )
        ax.set_xlabel("test sequence length")
        ax.set_ylabel(name)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    fig.suptitle(f"Length generalisation — {title}", fontsize="medium")
    fig.savefig(path)
    return path
