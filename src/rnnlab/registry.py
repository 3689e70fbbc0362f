"""Name → class lookups for tasks, so config can pick a task by `task.name` or `task._target_`.

The built-in tasks are a fixed table of their schemas (from `rnnlab.data.task_configs`, which
needs no torch) and the dotted paths of their DataModules. Validating, checking and planning
need only the schema; a DataModule, and with it torch and Lightning (seconds to import), is
imported when a task is built. A user's task is found through `task._target_`, or by name
once its module has run `@register_task`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rnnlab.data import task_configs as tc

if TYPE_CHECKING:
    from rnnlab.config import RunConfig, TaskConfigBase
    from rnnlab.data.base import SequenceDataModule


@dataclass(frozen=True)
class BuiltinTask:
    config: type[TaskConfigBase]
    datamodule: str  # dotted path of its SequenceDataModule


BUILTIN_TASKS: dict[str, BuiltinTask] = {
    name: BuiltinTask(config, f"rnnlab.data.{path}")
    for name, config, path in (
        ("adding", tc.AddingConfig, "synthetic.AddingDataModule"),
        ("copy", tc.CopyConfig, "synthetic.CopyDataModule"),
        ("digits", tc.DigitsConfig, "digits.DigitsDataModule"),
        ("pixel_mnist", tc.PixelMnistConfig, "pixel_mnist.PixelMnistDataModule"),
        ("spoken_digits", tc.SpokenDigitsConfig, "speech.SpokenDigitsDataModule"),
        ("japanese_vowels", tc.JapaneseVowelsConfig, "speech.JapaneseVowelsDataModule"),
        ("forecast", tc.ForecastConfig, "forecast.StatsmodelsForecastDataModule"),
        ("csv_series", tc.CsvSeriesConfig, "forecast.CsvSeriesDataModule"),
        ("ptb_word", tc.PtbWordConfig, "language_model.PtbWordDataModule"),
        ("ptb_char", tc.PtbCharConfig, "language_model.PtbCharDataModule"),
        ("pos", tc.PosConfig, "tagging.PosDataModule"),
        ("conll_tagging", tc.ConllTaggingConfig, "tagging.ConllTaggingDataModule"),
        ("sentiment", tc.SentimentConfig, "text_classification.SentimentDataModule"),
        (
            "text_classification",
            tc.TextClassificationConfig,
            "text_classification.UserTextClassificationDataModule",
        ),
    )
}

_TASKS: dict[str, type[SequenceDataModule]] = {}  # registered by name; they win over built-ins


def register_task(
    name: str,
) -> Callable[[type[SequenceDataModule]], type[SequenceDataModule]]:
    """Class decorator: make a DataModule available as `task.name=<name>`."""

    def deco(cls: type[SequenceDataModule]) -> type[SequenceDataModule]:
        _TASKS[name] = cls
        return cls

    return deco


def import_object(path: str) -> Any:
    module_name, _, attr = path.rpartition(".")
    if not module_name:
        raise ImportError(f"'{path}' is not a dotted path like my_pkg.MyClass")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"module '{module_name}' has no attribute '{attr}'") from None


def known_tasks() -> list[str]:
    return sorted({*BUILTIN_TASKS, *_TASKS})


def _builtin(task_raw: dict[str, Any]) -> BuiltinTask | None:
    """The built-in task a raw task config names, or None for a user's task."""
    name = task_raw.get("name")
    if task_raw.get("_target_") or name in _TASKS:
        return None
    return BUILTIN_TASKS.get(name)  # type: ignore[arg-type]


def task_class(task_raw: dict[str, Any]) -> type[SequenceDataModule]:
    """The DataModule class for a raw task config; KeyError carries a one-line message."""
    target = task_raw.get("_target_")
    if target == "???":  # conf/task/custom.yaml leaves it for the user
        raise KeyError("task=custom needs task._target_=my_pkg.MyDataModule (docs/extending.md)")
    if target:
        from rnnlab.data.base import SequenceDataModule

        try:
            cls = import_object(str(target))
        except (ImportError, ModuleNotFoundError) as exc:
            raise KeyError(f"task._target_={target!r}: cannot import it ({exc})") from None
        if not (isinstance(cls, type) and issubclass(cls, SequenceDataModule)):
            raise KeyError(
                f"task._target_={target!r}: not a subclass of rnnlab.data.SequenceDataModule "
                "(docs/extending.md)"
            )
        return cls
    name = task_raw.get("name")
    if name in _TASKS:
        return _TASKS[name]
    if name in BUILTIN_TASKS:
        return import_object(BUILTIN_TASKS[name].datamodule)
    raise KeyError(f"task.name={name!r}: unknown task; valid tasks: {', '.join(known_tasks())}")


def task_config_class(task_raw: dict[str, Any]) -> type[TaskConfigBase]:
    """The schema that validates a raw task config; KeyError carries a one-line message."""
    builtin = _builtin(task_raw)
    return builtin.config if builtin else task_class(task_raw).Config


def check_task_inputs(cfg: TaskConfigBase) -> None:
    """Refuse (ConfigError, one line) a task whose inputs are unusable, before any run exists.

    A user's DataModule may override `check`, so its class is asked; a built-in task's
    config checks itself, without importing its DataModule.
    """
    raw = cfg.model_dump(by_alias=True)
    if _builtin(raw):
        cfg.check_inputs()
    else:
        task_class(raw).check(cfg)


def task_scoring(cfg: RunConfig) -> tc.Scoring:
    """What the run's task reports and the validation metric it is followed by.

    A user's task says so only in its DataModule's `spec`, which may need its data: that
    one is built.
    """
    raw = cfg.task.model_dump(by_alias=True)
    builtin = _builtin(raw)
    if builtin:
        return builtin.config.scoring  # type: ignore[attr-defined]
    spec = task_class(raw)(cfg.task, batch_size=cfg.train.batch_size, seed=cfg.train.seed).spec
    return tc.Scoring(spec.metrics, spec.monitor, spec.monitor_mode)
