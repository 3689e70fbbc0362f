"""Turn `rnnlab sweep` overrides into a SweepPlan: everything a sweep needs, resolved in the driver.

Every config a trial can receive is composed (one per config-group combination) and
validated here, and every searched key and bound is checked against the schemas, so a bad
space fails in one line before Ray starts. Workers receive plain dicts and never touch Hydra.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rnnlab.config import ConfigError, RunConfig, one_line_error, validate_run_config
from rnnlab.registry import task_scoring
from rnnlab.sweep.settings import SweepSettings
from rnnlab.sweep.space import (
    GROUP_PREFIX,
    SearchSpace,
    combo_key,
    group_combinations,
    has_dotted,
    parse_search_space,
    set_dotted,
)
from rnnlab.tracking.probe import probe_composed


@dataclass
class SweepPlan:
    settings: SweepSettings
    space: SearchSpace
    bases: dict[str, dict[str, Any]]  # combo_key -> resolved run config (plain dict)
    name: str
    folder: Path
    metric: str
    mode: str
    base_cfg: RunConfig  # the first combination, for tracking/hardware/task facts
    overrides: list[str] = field(default_factory=list)

    def trial_config(self, params: dict[str, Any]) -> RunConfig:
        """The run config of one trial: its group combination plus its sampled values."""
        return build_trial_config(self.bases, params)


def build_trial_config(bases: dict[str, dict[str, Any]], params: dict[str, Any]) -> RunConfig:
    combo = {k[len(GROUP_PREFIX) :]: v for k, v in params.items() if k.startswith(GROUP_PREFIX)}
    raw = copy.deepcopy(bases[combo_key(combo)])
    for key, value in params.items():
        if not key.startswith(GROUP_PREFIX) and not key.startswith("_"):
            set_dotted(raw, key, value)
    return validate_run_config(raw)


def _check_value(base: dict[str, Any], key: str, value: Any, where: str) -> None:
    raw = copy.deepcopy(base)
    set_dotted(raw, key, value)
    try:
        validate_run_config(raw)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _probe_values(param) -> list[Any]:
    if param.kind == "categorical":
        return list(param.choices)
    low, high = param.low, param.high
    if param.kind == "int":
        return [int(low), int(high)]
    return [low, high]


def default_sweep_name(base: RunConfig, space: SearchSpace) -> str:
    model = "+".join(space.groups["model"]) if "model" in space.groups else base.model.name
    return f"{base.task.name}-{model}-{time.strftime('%Y%m%d-%H%M%S')}"


def pin_chosen_groups(space: SearchSpace, overrides: list[str]) -> SearchSpace:
    """The default study without the groups the user (or their experiment) chose.

    `rnnlab sweep model=gru` and `rnnlab sweep experiment=copy_gru` mean "study this GRU";
    the default search's `groups.model: [rnn, lstm]` would otherwise replace the GRU with
    the two models it compares. A search named on the command line or by the experiment
    keeps its groups: it was picked to compare them. Parameters conditioned on a pinned
    group stay only where the condition holds for the chosen option.
    """
    from rnnlab.composition import experiment_choices

    def group_choices(entries: list[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for entry in entries:
            key, sep, value = entry.lstrip("+").partition("=")
            if sep and "." not in key:
                out.setdefault(key, value)
        return out

    by_user = group_choices(overrides)
    chosen = {**group_choices(experiment_choices("sweep", overrides)), **by_user}
    if "search" in chosen:
        for group, option in by_user.items():
            if group in space.groups and option not in space.groups[group]:
                raise ConfigError(
                    f"{group}={option}: search {space.name} compares {group} "
                    f"{', '.join(space.groups[group])}; drop {group}={option} or add it with "
                    f"search.groups.{group}=[{','.join((*space.groups[group], option))}]"
                )
        return space
    pinned = {g: chosen[g] for g in space.groups if g in chosen}
    if not pinned:
        return space
    conditions = {GROUP_PREFIX + g: option for g, option in pinned.items()}
    params = []
    for param in space.params:
        if any(conditions.get(k, v) != v for k, v in param.when):
            continue  # conditioned on another option of a pinned group: never active
        when = tuple((k, v) for k, v in param.when if k not in conditions)
        params.append(dataclasses.replace(param, when=when))
    groups = {g: opts for g, opts in space.groups.items() if g not in pinned}
    return dataclasses.replace(space, params=tuple(params), groups=groups)


def build_plan(overrides: list[str], cwd: Path | None = None, probe: bool = True) -> SweepPlan:
    from rnnlab.composition import absolute_paths, compose

    cwd = cwd or Path.cwd()
    raw = absolute_paths(compose("sweep", overrides), cwd)
    sweep_raw = raw.pop("sweep", None) or {}
    search_raw = raw.pop("search", None)
    try:
        settings = SweepSettings.model_validate(sweep_raw)
    except ValidationError as err:
        raise one_line_error(err, sweep_raw, prefix="sweep.") from None
    if settings.resume and not settings.name:
        raise ConfigError(
            "sweep.resume=true needs sweep.name=NAME; `rnnlab sweeps` lists the sweeps here"
        )
    space = pin_chosen_groups(parse_search_space(search_raw), overrides)
    _check_groups(space)
    if probe:
        # An unreachable server is refused in seconds, before the slower validation imports.
        probe_composed(raw)

    bases: dict[str, dict[str, Any]] = {}
    base_cfg: RunConfig | None = None
    for combo in group_combinations(space):
        group_overrides = [f"{g}={opt}" for g, opt in combo.items()]
        if combo:
            combo_raw = absolute_paths(compose("sweep", [*overrides, *group_overrides]), cwd)
            combo_raw.pop("sweep", None)
            combo_raw.pop("search", None)
        else:
            combo_raw = raw
        cfg = validate_run_config(copy.deepcopy(combo_raw))
        base_cfg = base_cfg or cfg
        resolved = cfg.to_dict()
        for param in space.params:
            if not param.active(
                {GROUP_PREFIX + g: opt for g, opt in combo.items()}, groups_only=True
            ):
                continue  # e.g. model.init.forget_bias when group.model=lstm: not in the rnn combo
            if not has_dotted(resolved, param.name):
                raise ConfigError(
                    f"search.params.{param.name}: no such config key"
                    + (f" (in {combo_key(combo)})" if combo else "")
                    + "; run `rnnlab sweep --cfg` to see the keys"
                )
            for value in _probe_values(param):
                _check_value(resolved, param.name, value, f"search.params.{param.name}")
        bases[combo_key(combo)] = resolved
    assert base_cfg is not None

    by_name = {p.name: p for p in space.all_params()}
    for point in settings.initial_points:
        for key, value in point.items():
            param = by_name.get(key)
            if param is None:
                raise ConfigError(
                    f"sweep.initial_points: {key} is not searched; searched keys: {', '.join(by_name)}"
                )
            if not param.contains(value):
                raise ConfigError(
                    f"sweep.initial_points: {key}={value!r} is outside the search space ({param.describe()})"
                )

    # A built-in task's scoring is known from its schema; a user's task is built to ask its spec.
    scoring = task_scoring(base_cfg)
    metric = settings.metric or scoring.monitor
    valid_metrics = {"val/loss", "train/loss", *(f"val/{m}" for m in scoring.metrics)}
    if metric not in valid_metrics:
        raise ConfigError(
            f"sweep.metric={metric!r}: task {base_cfg.task.name} reports {', '.join(sorted(valid_metrics))}"
        )
    if settings.mode:
        mode = settings.mode
    elif metric == scoring.monitor:
        mode = scoring.monitor_mode
    else:
        mode = "max" if any(k in metric for k in ("accuracy", "f1")) else "min"

    check_sampler(settings, space)
    name = settings.name or default_sweep_name(base_cfg, space)
    root = Path(base_cfg.hardware.storage_path or settings.root)
    if not root.is_absolute():
        root = (cwd / root).resolve()
    return SweepPlan(
        settings=settings,
        space=space,
        bases=bases,
        name=name,
        folder=root / name,
        metric=metric,
        mode=mode,
        base_cfg=base_cfg,
        overrides=list(overrides),
    )


def _check_groups(space: SearchSpace) -> None:
    from rnnlab.composition import GROUPS, group_options

    searchable = [g for g in GROUPS if g != "search"]
    for group, options in space.groups.items():
        if group not in searchable:
            raise ConfigError(
                f"search.groups.{group}: not a config group; groups: {', '.join(searchable)}"
            )
        valid = group_options(group)
        for option in options:
            if option not in valid:
                raise ConfigError(
                    f"search.groups.{group}: unknown option {option!r}; valid: {', '.join(valid)}"
                )


def check_sampler(settings: SweepSettings, space: SearchSpace) -> None:
    """Reject sampler/space pairs that cannot work, before anything starts."""
    if settings.sampler == "grid":
        size = space.grid_size()  # raises on continuous or conditional params
        if settings.trials > size:
            raise ConfigError(
                f"sweep.trials={settings.trials}: the grid has only {size} points; set sweep.trials<={size}"
            )
    if settings.sampler == "cmaes" and not any(p.kind != "categorical" for p in space.params):
        raise ConfigError(
            "sweep.sampler=cmaes: CMA-ES searches continuous parameters and this space has none; use tpe or grid"
        )
