"""The config schemas: what the shipped configs compose to, what is refused, and how refusals read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from rnnlab.composition import compose, group_options
from rnnlab.config import (
    ConfigError,
    HardwareConfig,
    ModelConfig,
    RunConfig,
    TrainConfig,
    one_line_error,
    validate_run_config,
)


def _run_config(*overrides: str) -> RunConfig:
    return validate_run_config(compose("train", list(overrides)))


# --- the shipped configs -------------------------------------------------------------------


@pytest.mark.parametrize("model", ["rnn", "irnn", "lstm", "gru"])
@pytest.mark.parametrize("task", ["adding", "copy", "digits"])
def test_every_shipped_model_and_task_composes_into_a_valid_config(model: str, task: str) -> None:
    cfg = _run_config(f"model={model}", f"task={task}")
    assert cfg.model.name == model
    assert cfg.task.name == task


def test_train_defaults_are_lstm_on_adding_on_cpu_tracked_locally() -> None:
    cfg = _run_config()
    assert (cfg.model.name, cfg.task.name, cfg.hardware.name, cfg.tracking.name) == (
        "lstm",
        "adding",
        "cpu",
        "local",
    )
    assert cfg.tracking.uri == "sqlite:///mlflow.db"
    assert cfg.experiment_name is None


def test_irnn_is_a_relu_rnn_with_identity_recurrent_init() -> None:
    model = _run_config("model=irnn").model
    assert (model.cell, model.nonlinearity, model.init.recurrent) == ("rnn", "relu", "identity")


def test_hardware_groups_include_cpu_gpu_and_multi_gpu() -> None:
    assert {"cpu", "gpu", "multi_gpu"} <= set(group_options("hardware"))


# --- train.limit_batches: an int counts batches, a float is a fraction ------------------------


@pytest.mark.parametrize(
    "value, expected",
    [(5, 5), (1, 1), (0.25, 0.25), (1.0, 1.0), (None, None)],
)
def test_limit_batches_keeps_int_as_a_count_and_float_as_a_fraction(value, expected) -> None:
    got = TrainConfig(limit_batches=value).limit_batches
    assert got == expected
    assert type(got) is type(expected)


def test_limit_batches_from_the_command_line_keeps_its_type() -> None:
    assert type(_run_config("train.limit_batches=1").train.limit_batches) is int
    assert type(_run_config("train.limit_batches=1.0").train.limit_batches) is float


def test_limit_batches_reaches_lightning_as_count_or_fraction() -> None:
    from rnnlab.training.fit import build_trainer

    for value in (3, 0.5):
        cfg = _run_config(f"train.limit_batches={value}")
        trainer = build_trainer(cfg, [], None, Path("."), progress=False)
        for limit in (
            trainer.limit_train_batches,
            trainer.limit_val_batches,
            trainer.limit_test_batches,
        ):
            assert limit == value and type(limit) is type(value)


@pytest.mark.parametrize("value", [0, -3, 0.0, 1.5, True, "5", "abc"])
def test_limit_batches_refuses_zero_negative_fractions_above_one_bools_and_text(value) -> None:
    with pytest.raises(ValidationError):
        TrainConfig(limit_batches=value)


# --- hardware.precision ----------------------------------------------------------------------


@pytest.mark.parametrize("value, expected", [(32, "32"), ("32", "32"), (16, None)])
def test_precision_given_as_an_int_is_read_as_lightnings_string(value, expected) -> None:
    if expected is None:  # plain 16 is not a precision Lightning takes: 16-mixed is
        with pytest.raises(ValidationError):
            HardwareConfig(name="cpu", precision=value)
    else:
        assert HardwareConfig(name="cpu", precision=value).precision == expected


def test_precision_override_32_on_the_command_line_validates() -> None:
    assert _run_config("hardware.precision=32").hardware.precision == "32"
    assert _run_config("hardware.precision=bf16-mixed").hardware.precision == "bf16-mixed"


def test_fp16_on_cpu_is_refused_in_favour_of_bf16() -> None:
    with pytest.raises(ConfigError, match="bf16-mixed"):
        _run_config("hardware.precision=16-mixed")


def test_forget_bias_on_a_cell_without_forget_gate_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"model.init.forget_bias=1.0.*model.cell=gru"):
        _run_config("model=gru", "model.init.forget_bias=1.0")


# --- one_line_error ---------------------------------------------------------------------------


def _error(schema, raw: dict, prefix: str = "") -> str:
    with pytest.raises(ValidationError) as info:
        schema.model_validate(raw)
    return str(one_line_error(info.value, raw, prefix=prefix, schema=schema))


MODEL = {"name": "lstm", "cell": "lstm"}


@pytest.mark.parametrize(
    "raw, expected",
    [
        ({**MODEL, "dropout": 1.5}, "model.dropout=1.5: must be in [0, 1)"),
        ({**MODEL, "hidden_size": 0}, "model.hidden_size=0: must be in [1, 65536]"),
        ({**MODEL, "num_layers": "two"}, "model.num_layers='two': must be an integer"),
        ({**MODEL, "bidirectional": "maybe"}, "model.bidirectional='maybe': must be true or false"),
        (
            {**MODEL, "cell": "transformer"},
            "model.cell='transformer': must be one of 'rnn', 'lstm'",
        ),
        ({**MODEL, "init": {"recurrent_scale": 0}}, "model.init.recurrent_scale=0: must be > 0"),
        (
            {**MODEL, "hiden_size": 3},
            "unknown config key 'model.hiden_size' (not a field of model)",
        ),
        ({"cell": "lstm"}, "missing config key 'model.name'; set it with model.name=VALUE"),
    ],
)
def test_one_line_error_names_key_value_and_what_is_valid(raw: dict, expected: str) -> None:
    message = _error(ModelConfig, raw, prefix="model.")
    assert message.startswith(expected), message
    assert "\n" not in message


def test_one_line_error_states_bounds_without_the_schema_too() -> None:
    raw = {"lr": -1}
    with pytest.raises(ValidationError) as info:
        TrainConfig.model_validate(raw)
    message = str(one_line_error(info.value, raw, prefix="train."))
    assert message == "train.lr=-1: must be greater than 0"


def test_one_line_error_reports_a_validators_own_message() -> None:
    message = _error(TrainConfig, {"limit_batches": 0}, prefix="train.")
    assert message == "train.limit_batches=0: an int counts batches and must be >= 1"


def test_validate_run_config_names_nested_keys_with_their_full_path() -> None:
    raw = compose("train", [])
    raw["train"]["clip"]["threshold"] = -1
    with pytest.raises(ConfigError) as info:
        validate_run_config(raw)
    assert str(info.value) == "train.clip.threshold=-1: must be > 0"


def test_task_errors_carry_the_task_prefix_and_range() -> None:
    with pytest.raises(ConfigError) as info:
        _run_config("task.train_size=0")
    assert str(info.value) == "task.train_size=0: must be >= 1"
