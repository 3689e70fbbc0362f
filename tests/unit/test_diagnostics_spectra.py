"""Spectra of the recurrent weights: per gate, per direction, named for MLflow filtering."""

from __future__ import annotations

import pytest
import torch

from rnnlab.config import InitConfig, ModelConfig
from rnnlab.data.base import TaskSpec
from rnnlab.diagnostics.spectra import as_metrics, as_params, block_spectrum, layer_spectra
from rnnlab.models import build_model

SPEC = TaskSpec(head="many_to_one", loss="mse", input_kind="real", input_size=2, output_size=1)


def _net(cell: str, **init) -> torch.nn.Module:
    cfg = ModelConfig(
        name=cell,
        cell=cell,
        hidden_size=16,
        num_layers=2,
        init=InitConfig(**{"input": "xavier_uniform", "recurrent": "orthogonal", **init}),
    )
    return build_model(cfg, SPEC)


def test_block_spectrum_of_a_scaled_rotation():
    w = 0.5 * torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # eigenvalues ±0.5i
    radius, sigma = block_spectrum(w)
    assert radius == pytest.approx(0.5)
    assert sigma == pytest.approx(0.5)


def test_identity_init_has_radius_one_and_scaled_init_the_scale():
    spectra = layer_spectra(list(_net("rnn", recurrent="identity").layers))
    assert spectra[("l0", "recurrent")] == pytest.approx((1.0, 1.0))
    scaled = layer_spectra(list(_net("rnn", recurrent_scale=0.1).layers))
    assert scaled[("l1", "recurrent")] == pytest.approx((0.1, 0.1), rel=1e-4)


def test_lstm_and_gru_are_measured_per_gate_and_per_direction():
    lstm = layer_spectra(list(_net("lstm").layers))
    assert {g for (_, g) in lstm} == {"input", "forget", "cell", "output"}
    gru = build_model(ModelConfig(name="gru", cell="gru", hidden_size=8, bidirectional=True), SPEC)
    names = set(layer_spectra(list(gru.layers)))
    assert ("l0_reverse", "update") in names and ("l0", "reset") in names


def test_initial_spectra_become_filterable_params_and_epoch_ones_metrics():
    spectra = layer_spectra(list(_net("lstm").layers))
    params = as_params(spectra)
    assert float(params["init.spectral_radius.l0.forget"]) == pytest.approx(1.0, rel=1e-4)
    assert "init.max_singular_value.l1.output" in params
    assert "spectra/l0/forget/spectral_radius" in as_metrics(spectra)
