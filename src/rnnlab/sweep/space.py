"""Search spaces: the readable YAML form in conf/search/, checked and turned into Optuna calls.

A leaf is a mapping with `choices` (categorical), `low`/`high` (uniform; `log: true` for
log-uniform; `int: true` for integers; optional `step`), or `values` (an explicit list that
grid search can enumerate). `when: {other.key: value}` makes a parameter conditional, e.g.
the clip threshold exists only when clipping is on. `groups` picks config-group options
(e.g. `model: [rnn, lstm]`), composed per trial in the driver.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from rnnlab.config import ConfigError

GROUP_PREFIX = "group."
_LEAF_KEYS = {"choices", "low", "high", "values"}
_ALLOWED_KEYS = {"choices", "low", "high", "values", "log", "int", "step", "when"}


@dataclass(frozen=True)
class Param:
    """One searched key: `name` is the dotted config key it sets."""

    name: str
    kind: Literal["categorical", "float", "int"]
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    when: tuple[tuple[str, Any], ...] = ()

    @property
    def grid_values(self) -> tuple[Any, ...] | None:
        """Values grid search enumerates; None when the space is continuous."""
        if self.kind == "categorical":
            return self.choices
        if (
            self.kind == "int"
            and self.step is not None
            and self.low is not None
            and self.high is not None
        ):
            return tuple(range(int(self.low), int(self.high) + 1, int(self.step)))
        return None

    def active(self, sampled: Mapping[str, Any], groups_only: bool = False) -> bool:
        """Whether the conditions hold; `groups_only` checks just those on group choices."""
        return all(
            sampled.get(k) == v
            for k, v in self.when
            if not groups_only or k.startswith(GROUP_PREFIX)
        )

    def distribution(self):
        import optuna

        if self.kind == "categorical":
            return optuna.distributions.CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return optuna.distributions.IntDistribution(
                int(self.low), int(self.high), log=self.log, step=int(self.step or 1)
            )
        return optuna.distributions.FloatDistribution(
            self.low, self.high, log=self.log, step=self.step
        )

    def contains(self, value: Any) -> bool:
        dist = self.distribution()
        try:
            return bool(dist._contains(dist.to_internal_repr(value)))
        except (ValueError, TypeError):
            return False

    def suggest(self, trial: Any) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)

    def describe(self) -> str:
        cond = "" if not self.when else " when " + ", ".join(f"{k}={v}" for k, v in self.when)
        if self.kind == "categorical":
            return f"{self.name} in {list(self.choices)}{cond}"
        scale = "log-" if self.log else ""
        return f"{self.name} ~ {scale}{'int' if self.kind == 'int' else 'uniform'}[{self.low:g}, {self.high:g}]{cond}"


@dataclass(frozen=True)
class SearchSpace:
    name: str
    params: tuple[Param, ...]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def all_params(self) -> tuple[Param, ...]:
        """Group choices are categorical params too (named `group.<group>`)."""
        group_params = tuple(
            Param(name=GROUP_PREFIX + g, kind="categorical", choices=opts)
            for g, opts in self.groups.items()
        )
        return group_params + self.params

    def define_by_run(self, trial: Any) -> None:
        """Optuna define-by-run: suggest each parameter whose condition holds."""
        sampled: dict[str, Any] = {}
        for param in self.all_params():
            if param.active(sampled):
                sampled[param.name] = param.suggest(trial)

    def grid(self) -> dict[str, list[Any]]:
        """Optuna GridSampler's search space; ConfigError if any parameter is continuous."""
        out: dict[str, list[Any]] = {}
        for param in self.all_params():
            values = param.grid_values
            if values is None:
                raise ConfigError(
                    f"sweep.sampler=grid: search parameter {param.name} is continuous; give it "
                    f"explicit `values: [...]` (or `int: true` with `step`), or use another sampler"
                )
            if param.when:
                raise ConfigError(
                    f"sweep.sampler=grid: search parameter {param.name} is conditional ({param.describe()}); "
                    "grid search needs an unconditional space"
                )
            out[param.name] = list(values)
        return out

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.all_params())

    def distributions(self) -> dict[str, Any]:
        return {p.name: p.distribution() for p in self.all_params()}


def _leaves(node: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Mapping[str, Any]]]:
    out: list[tuple[str, Mapping[str, Any]]] = []
    for key, value in node.items():
        name = f"{prefix}{key}"
        if not isinstance(value, Mapping) or not value:
            raise ConfigError(
                f"search.params.{name}={value!r}: expected a mapping with choices, low/high or values"
            )
        if _LEAF_KEYS & set(value):
            out.append((name, value))
        else:
            out.extend(_leaves(value, name + "."))
    return out


def _number(name: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"search.params.{name}.{key}={value!r}: must be a number") from None
    return float(value)


def _parse_param(name: str, spec: Mapping[str, Any]) -> Param:
    unknown = set(spec) - _ALLOWED_KEYS
    if unknown:
        raise ConfigError(
            f"search.params.{name}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_ALLOWED_KEYS)}"
        )
    when_raw = spec.get("when") or {}
    if not isinstance(when_raw, Mapping):
        raise ConfigError(
            f"search.params.{name}.when={when_raw!r}: must map keys to values, e.g. {{train.clip.mode: norm}}"
        )
    when = tuple((str(k), v) for k, v in when_raw.items())
    kinds = [k for k in ("choices", "values") if k in spec]
    kinds += ["low/high"] if {"low", "high"} & set(spec) else []
    if len(kinds) > 1:
        raise ConfigError(
            f"search.params.{name}: give one of choices, values or low/high, not {' and '.join(kinds)}"
        )
    if "choices" in spec or "values" in spec:
        key = "choices" if "choices" in spec else "values"
        choices = spec[key]
        if not isinstance(choices, list | tuple) or len(choices) == 0:
            raise ConfigError(f"search.params.{name}.{key}={choices!r}: must be a non-empty list")
        if len(set(map(repr, choices))) != len(choices):
            raise ConfigError(f"search.params.{name}.{key}={list(choices)}: has duplicates")
        return Param(name=name, kind="categorical", choices=tuple(choices), when=when)
    if "low" not in spec or "high" not in spec:
        raise ConfigError(f"search.params.{name}: needs both low and high (or choices)")
    low, high = _number(name, "low", spec["low"]), _number(name, "high", spec["high"])
    log = bool(spec.get("log", False))
    is_int = bool(spec.get("int", False))
    if not low < high:
        raise ConfigError(f"search.params.{name}: low={low:g} must be < high={high:g}")
    if log and low <= 0:
        raise ConfigError(f"search.params.{name}: log scale needs low > 0 (got low={low:g})")
    step = spec.get("step")
    if step is not None:
        step = _number(name, "step", step)
        if step <= 0:
            raise ConfigError(f"search.params.{name}.step={step:g}: must be > 0")
        if log:
            raise ConfigError(f"search.params.{name}: step and log cannot be combined")
    if is_int:
        for key, value in (("low", low), ("high", high), ("step", step)):
            if value is not None and not float(value).is_integer():
                raise ConfigError(
                    f"search.params.{name}.{key}={value:g}: an int parameter needs whole numbers"
                )
    return Param(
        name=name,
        kind="int" if is_int else "float",
        low=low,
        high=high,
        log=log,
        step=step,
        when=when,
    )


def parse_search_space(raw: Mapping[str, Any] | None) -> SearchSpace:
    """Parse `search:` from the composed sweep config; ConfigError on any malformed part."""
    if not raw:
        raise ConfigError(
            "search: empty search space; pick one with search=NAME (see rnnlab sweep --help)"
        )
    allowed = {"name", "params", "groups", "description"}
    unknown = set(raw) - allowed
    if unknown:
        raise ConfigError(f"search: unknown field(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    params = tuple(_parse_param(n, s) for n, s in _leaves(raw.get("params") or {}))
    groups_raw = raw.get("groups") or {}
    groups: dict[str, tuple[str, ...]] = {}
    for group, options in groups_raw.items():
        if not isinstance(options, list | tuple) or not options:
            raise ConfigError(
                f"search.groups.{group}={options!r}: must be a non-empty list of options"
            )
        if len(set(map(str, options))) != len(options):
            raise ConfigError(f"search.groups.{group}={list(options)}: has duplicates")
        groups[str(group)] = tuple(str(o) for o in options)
    choices_of = {p.name: p for p in params}
    choices_of.update(
        {
            GROUP_PREFIX + g: Param(GROUP_PREFIX + g, "categorical", opts)
            for g, opts in groups.items()
        }
    )
    for p in params:
        for cond_key, cond_value in p.when:
            target = choices_of.get(cond_key)
            if target is None or cond_key == p.name:
                raise ConfigError(
                    f"search.params.{p.name}.when: refers to {cond_key}, which is not searched"
                )
            if target.kind != "categorical":
                raise ConfigError(
                    f"search.params.{p.name}.when: {cond_key} is continuous; a condition needs "
                    "a parameter with choices (or a search group)"
                )
            if cond_value not in target.choices:
                raise ConfigError(
                    f"search.params.{p.name}.when: {cond_key}={cond_value!r} is not one of {list(target.choices)}"
                )
    params = _conditions_first(params)
    if not params and not groups:
        raise ConfigError("search: the space has no parameters; add search.params or search.groups")
    return SearchSpace(name=str(raw.get("name", "custom")), params=params, groups=groups)


def _conditions_first(params: tuple[Param, ...]) -> tuple[Param, ...]:
    """Order params so each comes after those its `when` names: define-by-run suggests in
    order, and a condition on a not-yet-sampled key would silently never hold."""
    pending = list(params)
    done: list[Param] = []
    while pending:
        names = {p.name for p in pending}
        ready = [p for p in pending if not any(k in names for k, _ in p.when)]
        if not ready:
            cycle = ", ".join(p.name for p in pending)
            raise ConfigError(f"search.params: conditions (when) form a cycle among {cycle}")
        done.extend(ready)
        pending = [p for p in pending if p not in ready]
    return tuple(done)


def group_combinations(space: SearchSpace) -> list[dict[str, str]]:
    """Every combination of group options; each is composed once, in the driver."""
    if not space.groups:
        return [{}]
    keys = list(space.groups)
    return [
        dict(zip(keys, combo, strict=True))
        for combo in itertools.product(*(space.groups[k] for k in keys))
    ]


def combo_key(combo: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(combo.items())) or "base"


def set_dotted(config: dict[str, Any], key: str, value: Any) -> None:
    node = config
    parts = key.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            raise KeyError(key)
        node = nxt
    if parts[-1] not in node:
        raise KeyError(key)
    node[parts[-1]] = value


def has_dotted(config: Mapping[str, Any], key: str) -> bool:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
