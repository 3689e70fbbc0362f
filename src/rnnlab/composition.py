"""Compose a config with Hydra's Compose API and turn every failure into one line.

We use `initialize_config_dir` + `compose` rather than `@hydra.main`: the latter prints
multi-line errors, exits 1 and writes `outputs/…/.hydra` before our code can validate.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from rnnlab.config import ConfigError
from rnnlab.paths import conf_dir, experiments_dir

GROUPS = ("model", "task", "hardware", "tracking", "diagnostics", "search")
# The groups each root config's defaults list names: `search` belongs to sweeps only.
ROOT_GROUPS = {"train": GROUPS[:-1], "sweep": GROUPS}


def group_options(group: str) -> list[str]:
    if group == "experiment":
        return sorted(p.stem for p in experiments_dir().glob("*.yaml"))
    folder = conf_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []


def _check_group_choices(overrides: list[str], groups: tuple[str, ...]) -> None:
    """Reject `model=transformer` ourselves: Hydra's message spans a page."""
    for item in overrides:
        key, sep, value = item.lstrip("+~").partition("=")
        if not sep or key not in (*groups, "experiment"):
            continue
        options = group_options(key)
        if value not in options and value.lower() != "null":
            noun = "experiment" if key == "experiment" else key
            valid = ", ".join(options) or f"none (no {noun} files found)"
            raise ConfigError(f"{key}={value!r}: unknown {noun}; valid: {valid}")


def _group_choice(entry: Any) -> tuple[str, str] | None:
    """('task', 'adding') for a defaults-list entry `override /task: adding`, else None."""
    if not isinstance(entry, dict) or len(entry) != 1:
        return None
    ((key, option),) = entry.items()
    if not str(key).startswith("override "):
        return None
    return str(key).removeprefix("override ").strip().lstrip("/"), str(option)


def _register_experiments(config_name: str) -> None:
    """Make experiments/NAME.yaml selectable as `experiment=NAME` from any directory.

    An experiment may pick the search that compares its arms (`override /search: ...`);
    `rnnlab train` has no search group, so that entry is dropped when composing `train`.
    """
    from hydra.core.config_store import ConfigStore

    groups = ROOT_GROUPS.get(config_name, GROUPS)
    cs = ConfigStore.instance()
    for path in sorted(experiments_dir().glob("*.yaml")):
        node = yaml.safe_load(path.read_text()) or {}
        if "defaults" in node:
            node["defaults"] = [
                e
                for e in node["defaults"]
                if (choice := _group_choice(e)) is None or choice[0] in groups
            ]
        cs.store(group="experiment", name=path.stem, node=node, package="_global_")


def _experiment_name(overrides: list[str]) -> str | None:
    """NAME of an `experiment=NAME` override, or None (none given, or `experiment=null`)."""
    name = next(
        (o.partition("=")[2] for o in overrides if o.lstrip("+").startswith("experiment=")), None
    )
    return name if name and name.lower() != "null" else None


def experiment_choices(config_name: str, overrides: list[str]) -> list[str]:
    """The experiment's group choices as command-line overrides, unless the user chose.

    A root config's own `override` entries (sweep.yaml picks task adding_t100 and search
    init_dropout_clip) beat an experiment's in Hydra's defaults tree, so `rnnlab sweep
    experiment=NAME` would silently lose the experiment's task and search; command-line
    overrides beat both, and the user's own choices on the command line still win.
    """
    name = _experiment_name(overrides)
    if name is None:
        return []
    path = experiments_dir() / f"{name}.yaml"
    if not path.is_file():
        return []
    chosen = {o.lstrip("+~").partition("=")[0] for o in overrides}
    groups = ROOT_GROUPS.get(config_name, GROUPS)
    extra = []
    for entry in (yaml.safe_load(path.read_text()) or {}).get("defaults", []):
        choice = _group_choice(entry)
        if choice and choice[0] in groups and choice[0] not in chosen:
            extra.append(f"{choice[0]}={choice[1]}")
    return extra


_OVERRIDE_RE = re.compile(r"Could not override '([^']+)'")
_APPEND_RE = re.compile(r"Could not append to config. An item is already at '([^']+)'")


def _one_line(exc: Exception, config_name: str) -> ConfigError:
    text = str(exc)
    m = _OVERRIDE_RE.search(text)
    if m:
        key = m.group(1)
        return ConfigError(
            f"unknown config key '{key}'; check the spelling (`rnnlab {config_name} --cfg` "
            f"shows every key) or add a new key with +{key}=VALUE"
        )
    m = _APPEND_RE.search(text)
    if m:
        return ConfigError(f"'{m.group(1)}' already exists; drop the leading '+' to override it")
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return ConfigError(first)


def compose(config_name: str, overrides: list[str]) -> dict[str, Any]:
    """Compose conf/<config_name>.yaml with overrides; return a fully resolved plain dict."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    _check_group_choices(overrides, GROUPS)
    _register_experiments(config_name)
    overrides = [*overrides, *experiment_choices(config_name, overrides)]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(
            config_dir=str(conf_dir()), version_base="1.3", job_name="rnnlab"
        ):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
            resolved = OmegaConf.to_container(cfg, resolve=True)
    except (OmegaConfBaseException, ValueError, KeyError) as exc:
        raise _one_line(exc, config_name) from None
    except Exception as exc:  # hydra.errors.* carry their own multi-line texts
        if type(exc).__module__.startswith(("hydra", "omegaconf")):
            raise _one_line(exc, config_name) from None
        raise
    finally:
        GlobalHydra.instance().clear()
    assert isinstance(resolved, dict)
    experiment = _experiment_name(overrides)
    if experiment is not None:
        resolved["experiment_name"] = experiment
    return resolved


def absolute_paths(raw: dict[str, Any], base: Path | None = None) -> dict[str, Any]:
    """Resolve relative stores and data paths in the driver: workers never see the launch dir."""
    from rnnlab.tracking.probe import resolve_tracking_uri

    base = base or Path.cwd()
    tracking = raw.get("tracking")
    if isinstance(tracking, dict) and isinstance(tracking.get("uri"), str):
        tracking["uri"] = resolve_tracking_uri(tracking["uri"], base)
    task = raw.get("task")
    if isinstance(task, dict):
        for key in ("path", "train_path", "val_path", "test_path"):
            value = task.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute():
                task[key] = str((base / value).resolve())
    hw = raw.get("hardware")
    if isinstance(hw, dict) and isinstance(hw.get("storage_path"), str):
        sp = hw["storage_path"]
        if "://" not in sp and not Path(sp).is_absolute():
            hw["storage_path"] = str((base / sp).resolve())
    return raw
