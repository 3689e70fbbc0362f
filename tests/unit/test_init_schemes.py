"""Init schemes act per gate block, on the right matrix, with the documented statistics."""

from __future__ import annotations

import math
from typing import Any, get_args

import pytest
import torch
from torch import nn

from rnnlab.config import InitScheme, ModelConfig
from rnnlab.data.base import TaskSpec
from rnnlab.models import INIT_SCHEMES, build_model
from rnnlab.models.recurrent import RecurrentNet

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
CELLS = sorted(GATES)
SPEC = TaskSpec(head="many_to_one", loss="mse", input_kind="real", input_size=48, output_size=1)


def make(cell: str, hidden_size: int = 64, **init: Any) -> RecurrentNet:
    torch.manual_seed(0)
    cfg = ModelConfig(name=cell, cell=cell, hidden_size=hidden_size, init=init)
    return build_model(cfg, SPEC)


def blocks(weight: torch.Tensor, hidden_size: int) -> list[torch.Tensor]:
    return list(weight.detach().split(hidden_size, dim=0))


def test_registry_offers_exactly_the_schemes_the_config_accepts() -> None:
    assert set(INIT_SCHEMES) == set(get_args(InitScheme))


@pytest.mark.parametrize("cell", CELLS)
def test_orthogonal_recurrent_makes_every_gate_block_orthogonal(cell: str) -> None:
    layer = make(cell, recurrent="orthogonal").layers[0]
    gate_blocks = blocks(layer.weight_hh_l0, 64)
    assert len(gate_blocks) == GATES[cell]
    for w in gate_blocks:
        torch.testing.assert_close(w.T @ w, torch.eye(64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_orthogonal_input_gives_orthonormal_columns_of_each_rectangular_block(cell: str) -> None:
    layer = make(cell, input="orthogonal").layers[0]
    for w in blocks(layer.weight_ih_l0, 64):  # 64 x 48: columns orthonormal
        torch.testing.assert_close(w.T @ w, torch.eye(48), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_identity_recurrent_is_the_identity_in_every_gate_block(cell: str) -> None:
    layer = make(cell, recurrent="identity").layers[0]
    for w in blocks(layer.weight_hh_l0, 64):
        assert torch.equal(w, torch.eye(64))


def test_identity_input_on_a_rectangular_block_is_eye() -> None:
    layer = make("lstm", input="identity").layers[0]
    for w in blocks(layer.weight_ih_l0, 64):
        assert torch.equal(w, torch.eye(64, 48))


def _std_formula(name: str, fan_in: int, fan_out: int) -> float:
    if name.startswith("xavier"):
        return math.sqrt(2.0 / (fan_in + fan_out))
    return math.sqrt(2.0 / fan_in)  # kaiming, ReLU gain


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "name", ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal"]
)
def test_fan_based_schemes_match_their_std_per_gate_block(cell: str, name: str) -> None:
    layer = make(cell, input=name, recurrent=name).layers[0]
    for weight, fan_in in ((layer.weight_ih_l0, 48), (layer.weight_hh_l0, 64)):
        expected = _std_formula(name, fan_in=fan_in, fan_out=64)
        for w in blocks(weight, 64):
            assert w.std().item() == pytest.approx(expected, rel=0.08)
            assert abs(w.mean().item()) < 0.1 * expected


@pytest.mark.parametrize("cell", CELLS)
def test_default_is_pytorch_uniform_within_one_over_sqrt_hidden(cell: str) -> None:
    layer = make(cell).layers[0]
    bound = 1.0 / math.sqrt(64)
    for weight in (layer.weight_ih_l0, layer.weight_hh_l0):
        w = weight.detach()
        assert w.abs().max().item() <= bound
        assert w.abs().max().item() > 0.95 * bound
        assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


def test_input_and_recurrent_schemes_are_applied_to_their_own_matrices() -> None:
    layer = make("gru", input="identity", recurrent="orthogonal").layers[0]
    for w in blocks(layer.weight_ih_l0, 64):
        assert torch.equal(w, torch.eye(64, 48))
    for w in blocks(layer.weight_hh_l0, 64):
        assert not torch.equal(w, torch.eye(64))
        torch.testing.assert_close(w.T @ w, torch.eye(64), atol=1e-5, rtol=0)


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_scale_multiplies_the_recurrent_blocks_only(cell: str) -> None:
    layer = make(cell, input="identity", recurrent="orthogonal", recurrent_scale=0.25).layers[0]
    for w in blocks(layer.weight_hh_l0, 64):
        torch.testing.assert_close(w.T @ w, 0.0625 * torch.eye(64), atol=1e-5, rtol=0)
    for w in blocks(layer.weight_ih_l0, 64):
        assert torch.equal(w, torch.eye(64, 48))


def test_lstm_forget_bias_sets_only_the_forget_slice_of_bias_ih() -> None:
    layer = make("lstm", hidden_size=8, forget_bias=1.5).layers[0]
    bias_ih = layer.bias_ih_l0.detach()
    expected = torch.zeros(32)
    expected[8:16] = 1.5  # gate order (i, f, g, o)
    assert torch.equal(bias_ih, expected)
    assert torch.equal(layer.bias_hh_l0.detach(), torch.zeros(32))


@pytest.mark.parametrize("cell", CELLS)
def test_all_biases_start_at_zero_without_forget_bias(cell: str) -> None:
    net = make(cell, hidden_size=8)
    for name, p in net.layers[0].named_parameters():
        if name.startswith("bias"):
            assert torch.equal(p.detach(), torch.zeros_like(p)), name


def test_forget_bias_on_a_cell_without_forget_gate_is_refused() -> None:
    with pytest.raises(ValueError, match="forget_bias"):
        make("gru", hidden_size=8, forget_bias=1.0)


@pytest.mark.parametrize("cell", CELLS)
def test_every_layer_and_both_directions_are_initialized(cell: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(
        name=cell,
        cell=cell,
        hidden_size=8,
        num_layers=2,
        bidirectional=True,
        init={"recurrent": "identity", "input": "orthogonal"},
    )
    net = build_model(cfg, SPEC)
    for layer in net.layers:
        assert isinstance(layer, nn.RNNBase)
        for suffix in ("l0", "l0_reverse"):
            for w in blocks(getattr(layer, f"weight_hh_{suffix}"), 8):
                assert torch.equal(w, torch.eye(8))
            for w in blocks(getattr(layer, f"weight_ih_{suffix}"), 8):
                # 8 x F with F >= 8: rows orthonormal
                torch.testing.assert_close(w @ w.T, torch.eye(8), atol=1e-5, rtol=0)
