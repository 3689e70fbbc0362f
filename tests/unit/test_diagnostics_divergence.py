"""Which part of the network's gradient blew up first before a run diverged."""

from __future__ import annotations

import math

from rnnlab.config import ModelConfig
from rnnlab.data.base import TaskSpec
from rnnlab.diagnostics.divergence import find_blowup, parameter_groups
from rnnlab.models import build_model


def test_the_part_that_jumps_first_is_named():
    steps = list(range(100, 120))
    flat = [1.0] * 20
    l0 = [*flat[:15], 50.0, 1e4, math.inf, math.inf, math.inf]
    l1 = [*flat[:12], 30.0, 1e3, 1e5, 1e6, math.inf, math.inf, math.inf, math.inf]
    found = find_blowup(steps, {"l0": l0, "l1": l1, "head": flat})
    assert found["blowup_layer"] == "l1"
    assert found["blowup_step"] == 112
    assert found["blowup_factor"] == 30.0


def test_a_non_finite_norm_counts_as_a_blowup():
    found = find_blowup([0, 1, 2], {"l0": [1.0, 1.0, math.nan], "head": [1.0, 1.0, 2.0]})
    assert found["blowup_layer"] == "l0"
    assert found["blowup_step"] == 2


def test_without_a_jump_the_fastest_growing_part_is_named_with_its_rule():
    found = find_blowup([0, 1, 2, 3], {"l0": [1.0, 1.1, 1.2, 1.3], "head": [1.0, 2.0, 3.0, 4.0]})
    assert found["blowup_layer"] == "head"
    assert "largest growth" in found["blowup_rule"]


def test_parts_are_encoder_layers_and_head_when_they_have_parameters():
    spec = TaskSpec(head="many_to_one", loss="mse", input_kind="real", input_size=2, output_size=1)
    net = build_model(ModelConfig(name="lstm", cell="lstm", hidden_size=4, num_layers=2), spec)

    class Module:
        pass

    module = Module()
    module.net = net  # type: ignore[attr-defined]
    assert list(parameter_groups(module)) == ["l0", "l1", "head"]  # type: ignore[arg-type]


def test_a_divergence_after_one_recorded_step_is_undetermined():
    found = find_blowup([0], {"l0": [9600.0], "head": [480.0]})
    assert found["blowup_layer"] == "undetermined"
