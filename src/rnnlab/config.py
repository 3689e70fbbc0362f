"""Schemas for every config group, and the one function that checks a composed config.

Hydra composes; these schemas decide what is valid. Keeping validation here (instead
of scattered asserts) is what lets the CLI refuse bad input in one line *before* any
folder, MLflow run or Ray worker exists.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)

InitScheme = Literal[
    "default",
    "xavier_uniform",
    "xavier_normal",
    "orthogonal",
    "identity",
    "kaiming_uniform",
    "kaiming_normal",
]


class ConfigError(ValueError):
    """A user-facing configuration problem, always one line."""


class _Strict(BaseModel):
    # extra="forbid" turns a misspelt key into an error instead of a silent no-op.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class InitConfig(_Strict):
    input: InitScheme = "default"
    recurrent: InitScheme = "default"
    # Jozefowicz et al. 2015: a forget-gate bias of 1 helps LSTMs remember; only LSTM uses it.
    forget_bias: float = 0.0
    # Scale applied after the scheme (e.g. 0.01 for a deliberately vanishing tanh RNN).
    recurrent_scale: float = Field(default=1.0, gt=0)


class ModelConfig(_Strict):
    name: str
    cell: Literal["rnn", "lstm", "gru"]
    nonlinearity: Literal["tanh", "relu"] = "tanh"
    num_layers: int = Field(default=1, ge=1, le=16)
    hidden_size: int = Field(default=128, ge=1, le=65536)
    bidirectional: bool = False
    embedding_dim: int | None = Field(default=None, ge=1)
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    dropout_input: float = Field(default=0.0, ge=0.0, lt=1.0)
    dropout_variational: bool = False
    pack_sequences: bool = False
    init: InitConfig = InitConfig()
    target_: str | None = Field(default=None, alias="_target_")
    # A user model's own keys (`+model.options.width=32`), checked by its `Options` schema if
    # it has one (rnnlab.models.custom); the built-in models take none.
    options: dict[str, Any] = Field(default_factory=dict)


class TaskConfigBase(_Strict):
    """Fields every task has; each task registers a subclass with its own fields."""

    name: str
    target_: str | None = Field(default=None, alias="_target_")

    def check_inputs(self) -> None:
        """Raise ConfigError (one line) if the task's inputs (e.g. user files) are unusable.

        Called before any run or folder exists, and on a config alone so that no DataModule,
        hence no torch, has to be imported for it: cheap checks only. Nothing to check here.
        """


class ClipConfig(_Strict):
    mode: Literal["norm", "value", "none"] = "norm"
    threshold: float = Field(default=1.0, gt=0.0)


class EarlyStoppingConfig(_Strict):
    enabled: bool = True
    monitor: str | None = None  # None: the task's validation metric
    mode: Literal["min", "max"] | None = None  # None: the task's mode, or guessed from the name
    patience: int = Field(default=5, ge=1)
    min_delta: float = Field(default=0.0, ge=0.0)


class LRScheduleConfig(_Strict):
    name: Literal["constant", "cosine", "step", "plateau"] = "constant"
    step_size: int = Field(default=10, ge=1)
    gamma: float = Field(default=0.5, gt=0.0, le=1.0)
    # step: the epoch (from 0) of the first decay; None: step_size (torch's StepLR). Zaremba
    # et al. 2014 hold the rate for 4 or 6 epochs, then decay it every epoch.
    decay_start: int | None = Field(default=None, ge=1)
    warmup_epochs: int = Field(default=0, ge=0)


class TrainConfig(_Strict):
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(default=1e-3, gt=0.0, le=100.0)
    momentum: float = Field(default=0.0, ge=0.0, lt=1.0)
    weight_decay: float = Field(default=0.0, ge=0.0)
    lr_schedule: LRScheduleConfig = LRScheduleConfig()
    max_epochs: int = Field(default=10, ge=1)
    batch_size: int = Field(default=64, ge=1)
    limit_batches: int | float | None = None
    early_stopping: EarlyStoppingConfig = EarlyStoppingConfig()
    seed: int = Field(default=0, ge=0)
    clip: ClipConfig = ClipConfig()
    time_budget: float | None = Field(default=None, gt=0.0)
    keep_checkpoints: Literal["best_and_last", "best", "last", "none"] = "best_and_last"
    checkpoints_in_memory_mb: float = Field(default=64.0, ge=0.0)
    deterministic: bool = False

    # mode="before": after pydantic's lax coercion `true` would already be the int 1.
    @field_validator("limit_batches", mode="before")
    @classmethod
    def _limit(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise ValueError("must be an int (batches) or a float in (0, 1] (fraction)")
        if isinstance(v, int) and v < 1:
            raise ValueError("an int counts batches and must be >= 1")
        if isinstance(v, float) and not 0.0 < v <= 1.0:
            raise ValueError("a float is a fraction and must be in (0, 1]")
        return v


class HardwareConfig(_Strict):
    name: str
    accelerator: Literal["cpu", "gpu", "auto"] = "cpu"
    devices: int | Literal["auto"] = 1
    strategy: Literal["auto", "ddp_spawn", "ray_ddp"] = "auto"
    precision: Literal["32", "32-true", "16-mixed", "bf16-mixed", "bf16-true"] = "32"
    cpus_per_trial: float = Field(default=1.0, gt=0.0)
    gpus_per_trial: float = Field(default=0.0, ge=0.0)
    address: str | None = None
    storage_path: str | None = None
    threads: int | None = Field(default=None, ge=1)

    @field_validator("precision", mode="before")
    @classmethod
    def _precision_str(cls, v: Any) -> Any:
        # YAML and Hydra overrides turn `32` into an int.
        return str(v) if isinstance(v, int) else v


class TrackingConfig(_Strict):
    name: str
    uri: str = "sqlite:///mlflow.db"
    experiment: str = Field(default="rnnlab", min_length=1)
    artifact_location: str | None = None
    probe_timeout: float = Field(default=2.0, gt=0.0)
    log_checkpoints: bool = True


class DiagnosticsConfig(_Strict):
    # Callbacks in rnnlab.diagnostics; all off: no hook is registered and nothing is paid.
    gradient_flow: bool = False  # ‖∂L/∂x_t‖ of each layer's input, every_n_steps
    every_n_steps: int = Field(default=50, ge=1)  # plus the first step of every epoch
    clipping: bool = False  # clip fraction, norm quantiles before/after, AMP loss scale
    spectra: bool = False  # spectral radius / σ_max of W_hh per gate, at init and per epoch
    divergence: bool = False  # per-layer gradient norms of the last steps, if a run diverges
    plots: bool = False  # PNGs of the above and the loss curves, as MLflow artifacts


class RunConfig(_Strict):
    """The validated, fully resolved configuration of one training run."""

    model: ModelConfig
    task: SerializeAsAny[TaskConfigBase]
    hardware: HardwareConfig
    tracking: TrackingConfig
    train: TrainConfig = TrainConfig()
    diagnostics: DiagnosticsConfig = DiagnosticsConfig()
    experiment_name: str | None = None  # the experiments/ entry applied, if any

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        if self.model.cell != "lstm" and self.model.init.forget_bias != 0.0:
            raise ValueError(
                f"model.init.forget_bias={self.model.init.forget_bias}: only an LSTM has a "
                f"forget gate (model.cell={self.model.cell}); leave it at 0"
            )
        if self.hardware.accelerator == "cpu" and self.hardware.precision == "16-mixed":
            raise ValueError(
                "hardware.precision=16-mixed: fp16 autocast needs a GPU; "
                "use bf16-mixed on CPU or hardware=gpu"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


def _lookup(raw: dict[str, Any], loc: tuple[Any, ...]) -> Any:
    node: Any = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


_BOUND_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def _field_range(schema: type[BaseModel] | None, loc: tuple[str, ...]) -> str | None:
    """The valid range of the field at `loc`, as `in [0, 1)` or `>= 1`, from its constraints."""
    node: Any = schema
    info = None
    for part in loc:
        fields = getattr(node, "model_fields", None)
        if not fields or part not in fields:
            return None
        info = fields[part]
        node = info.annotation
    if info is None:
        return None
    lo = hi = None
    for c in info.metadata:
        if getattr(c, "ge", None) is not None:
            lo = f"[{c.ge:g}"
        elif getattr(c, "gt", None) is not None:
            lo = f"({c.gt:g}"
        if getattr(c, "le", None) is not None:
            hi = f"{c.le:g}]"
        elif getattr(c, "lt", None) is not None:
            hi = f"{c.lt:g})"
    if lo and hi:
        return f"in {lo}, {hi}"
    if lo:
        return f"{'>=' if lo[0] == '[' else '>'} {lo[1:]}"
    if hi:
        return f"{'<=' if hi[-1] == ']' else '<'} {hi[:-1]}"
    return None


def one_line_error(
    err: ValidationError,
    raw: dict[str, Any],
    prefix: str = "",
    schema: type[BaseModel] | None = None,
) -> ConfigError:
    """Turn pydantic's multi-line report into the one line a user needs.

    `schema` (the model that raised) lets a bound error state the whole valid range.
    """
    first = err.errors()[0]
    # pydantic adds union members and validators as loc parts ('int', 'function-after[...]').
    loc = tuple(
        p
        for p in first["loc"]
        if isinstance(p, str) and "[" not in p and p not in ("int", "float", "str", "bool")
    )
    key = prefix + ".".join(str(p) for p in loc)
    kind = first["type"]
    value = _lookup(raw, tuple(loc))
    if kind == "extra_forbidden":
        parent = ".".join(key.split(".")[:-1]) or "the root"
        return ConfigError(
            f"unknown config key '{key}' (not a field of {parent}); check the spelling "
            f"or run `rnnlab train --cfg` to see the valid keys"
        )
    if kind == "missing":
        return ConfigError(f"missing config key '{key}'; set it with {key}=VALUE")
    msg = first["msg"]
    if kind == "literal_error":
        expected = first.get("ctx", {}).get("expected", "")
        msg = f"must be one of {expected}"
    elif kind in ("float_parsing", "float_type"):
        msg = "must be a number"
    elif kind in ("int_parsing", "int_type", "int_from_float"):
        msg = "must be an integer"
    elif kind in ("bool_parsing", "bool_type"):
        msg = "must be true or false"
    elif kind in _BOUND_ERRORS:
        valid = _field_range(schema, loc)
        msg = f"must be {valid}" if valid else msg.replace("Input should be", "must be")
    elif msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if not loc:  # a check across fields: its message names the keys itself
        return ConfigError(msg)
    if key:
        return ConfigError(f"{key}={value!r}: {msg}".replace("=None:", ":"))
    return ConfigError(msg)


def validate_run_config(raw: dict[str, Any]) -> RunConfig:
    """Check a composed config dict against every schema; raise ConfigError (one line)."""
    from rnnlab.registry import task_config_class  # late: the task schemas import this module

    raw = dict(raw)
    task_raw = dict(raw.get("task") or {})
    try:
        task_cls = task_config_class(task_raw)
    except KeyError as exc:
        raise ConfigError(str(exc.args[0])) from None
    try:
        task = task_cls.model_validate(task_raw)
    except ValidationError as err:
        raise one_line_error(err, task_raw, prefix="task.", schema=task_cls) from None
    rest = {k: v for k, v in raw.items() if k != "task"}
    rest["task"] = task  # an instance of the task's own schema is kept as it is
    try:
        cfg = RunConfig.model_validate(rest)
    except ValidationError as err:
        raise one_line_error(err, rest, schema=RunConfig) from None
    if cfg.model.target_ or cfg.model.options:
        from rnnlab.models.custom import check_model_config  # late: imports torch

        cfg.model = check_model_config(cfg.model)
    return cfg
