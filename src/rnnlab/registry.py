"""Name → class lookups for tasks, so config can pick a task by `task.name` or `task._target_`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rnnlab.config import TaskConfigBase
    from rnnlab.data.base import SequenceDataModule

_TASKS: dict[str, type[SequenceDataModule]] = {}


def register_task(name: str):
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
    import rnnlab.data  # noqa: F401  (registers the built-in tasks)

    return sorted(_TASKS)


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
    valid = known_tasks()
    if name not in _TASKS:
        raise KeyError(f"task.name={name!r}: unknown task; valid tasks: {', '.join(valid)}")
    return _TASKS[name]


def task_config_class(task_raw: dict[str, Any]) -> type[TaskConfigBase]:
    return task_class(task_raw).Config
