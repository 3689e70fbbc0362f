"""Your own network as `model._target_=my_pkg.MyNet`: the interface it implements, checked early.

A user model is any `torch.nn.Module` class with this constructor and forward:

    class MyNet(nn.Module):
        Options = MyOptions            # optional: a pydantic model for `model.options`

        def __init__(self, cfg: ModelConfig, spec: TaskSpec) -> None: ...
        def forward(self, inputs, lengths=None, hidden=None) -> ModelOutput: ...

`cfg` is the whole validated `model:` section (hidden_size, num_layers, dropout, init, ...,
and `cfg.options`, the user's own keys); `spec` says what the task feeds and expects
(`input_kind`, `input_size`, `output_size`, `head`). `forward` gets the padded batch
((B, T, F) floats or (B, T) token ids) with true lengths (a CPU long tensor), and returns
`ModelOutput(predictions, hidden)`: predictions (B, output_size) for a many-to-one task or
(B, T, output_size) for many-to-many; hidden may be None unless the task is stateful
(language modelling), where it is one entry per layer, each (directions, B, H) or a tuple of
such (see `rnnlab.models.recurrent.HiddenState`). A `layers` ModuleList whose modules take
the padded (B, T, F) input as their first argument opts the model into the per-layer
diagnostics. docs/extending.md has a worked example.
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol, runtime_checkable

import torch
from pydantic import BaseModel, ValidationError
from torch import nn

from rnnlab.config import ConfigError, ModelConfig, one_line_error
from rnnlab.data.base import TaskSpec
from rnnlab.models.recurrent import HiddenState, ModelOutput


@runtime_checkable
class SequenceModel(Protocol):
    """What `model._target_` must name: an nn.Module class built from (ModelConfig, TaskSpec)."""

    def __init__(self, cfg: ModelConfig, spec: TaskSpec) -> None: ...

    def forward(
        self,
        inputs: torch.Tensor,
        lengths: torch.Tensor | None = None,
        hidden: HiddenState | None = None,
    ) -> ModelOutput: ...


def model_class(target: str) -> type[nn.Module]:
    """The class `model._target_` names, or ConfigError (one line) saying why it cannot be used."""
    from rnnlab.registry import import_object

    if target == "???":  # conf/model/custom.yaml leaves it for the user
        raise ConfigError("model=custom needs model._target_=my_pkg.MyNet (docs/extending.md)")
    try:
        cls = import_object(target)
    except ImportError as exc:  # ModuleNotFoundError included
        raise ConfigError(
            f"model._target_={target!r}: cannot import it ({exc}); is its package installed "
            "or on PYTHONPATH?"
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(
            f"model._target_={target!r}: not a torch.nn.Module subclass "
            "(see docs/extending.md for the interface)"
        )
    return cls


def check_model_config(cfg: ModelConfig) -> ModelConfig:
    """Validate what only the user's class can judge: it imports, and its `Options`.

    Returns the config with `options` filled in from the `Options` schema's defaults, so
    the run's logged config shows every value the model was built with.
    """
    if not cfg.target_:
        if cfg.options:
            raise ConfigError(
                f"model.options={cfg.options!r}: options are for a user model "
                "(model._target_=my_pkg.MyNet); the built-in models take none"
            )
        return cfg
    cls = model_class(cfg.target_)
    try:
        inspect.signature(cls).bind(cfg, None)
    except TypeError:
        raise ConfigError(
            f"model._target_={cfg.target_!r}: its __init__ must take (cfg: ModelConfig, "
            f"spec: TaskSpec); it takes {inspect.signature(cls)}"
        ) from None
    except ValueError:  # no signature to inspect (a C extension): let the call tell
        pass
    schema = getattr(cls, "Options", None)
    if schema is None:
        return cfg
    if not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise ConfigError(
            f"model._target_={cfg.target_!r}: its Options must be a pydantic BaseModel class"
        )
    try:
        options = schema.model_validate(cfg.options)
    except ValidationError as err:
        raise one_line_error(err, cfg.options, prefix="model.options.", schema=schema) from None
    return cfg.model_copy(update={"options": options.model_dump(mode="json")})


def build_custom_model(cfg: ModelConfig, spec: TaskSpec) -> nn.Module:
    """Instantiate `cfg.target_` and check one tiny forward pass against the interface.

    The check runs on two sequences of three steps before any training, so a model that
    returns the wrong thing fails in one line instead of deep inside the loss.
    """
    assert cfg.target_
    cls = model_class(cfg.target_)
    net = cls(cfg, spec)
    check_forward(net, spec, cfg.target_)
    return net


def _dummy_batch(spec: TaskSpec, batch: int, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    if spec.input_kind == "tokens":
        token = 0 if spec.padding_idx != 0 else min(1, spec.input_size - 1)
        inputs = torch.full((batch, steps), token, dtype=torch.long)
    else:
        inputs = torch.zeros(batch, steps, spec.input_size)
    return inputs, torch.full((batch,), steps, dtype=torch.long)


def check_forward(
    net: nn.Module, spec: TaskSpec, target: str, batch: int = 2, steps: int = 3
) -> Any:
    """Run one small batch through `net`; ConfigError if the output breaks the interface."""
    inputs, lengths = _dummy_batch(spec, batch, steps)
    device = next((p.device for p in net.parameters()), torch.device("cpu"))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            out = net(inputs.to(device), lengths)
    except Exception as exc:
        raise ConfigError(
            f"model._target_={target!r}: forward(inputs {tuple(inputs.shape)}, lengths) failed "
            f"on a test batch: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        net.train(was_training)
    if not isinstance(out, ModelOutput):
        raise ConfigError(
            f"model._target_={target!r}: forward must return "
            f"rnnlab.models.ModelOutput(predictions, hidden), not {type(out).__name__}"
        )
    want = (
        (batch, spec.output_size)
        if spec.head == "many_to_one"
        else (batch, steps, spec.output_size)
    )
    got = tuple(out.predictions.shape)
    if got != want:
        dims = "(B, output_size)" if spec.head == "many_to_one" else "(B, T, output_size)"
        raise ConfigError(
            f"model._target_={target!r}: predictions have shape {got} for a batch of {batch} "
            f"sequences of {steps} steps; this {spec.head} task needs {dims} = {want}"
        )
    return out
