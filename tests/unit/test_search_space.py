"""The YAML search-space form (conf/search/): what each leaf becomes in Optuna, and what is refused.

Pure parsing and real Optuna studies; no Hydra, no Ray. Refusals are checked for being
one line that names the offending key, because that line is all a user sees.
"""

from __future__ import annotations

import itertools
from typing import Any

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from rnnlab.config import ConfigError
from rnnlab.paths import conf_dir
from rnnlab.sweep.samplers import build_sampler
from rnnlab.sweep.space import (
    SearchSpace,
    combo_key,
    group_combinations,
    parse_search_space,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)

CLIP_SPACE = """
params:
  train:
    clip:
      mode: {choices: [none, norm]}
      threshold: {low: 0.01, high: 100.0, log: true, when: {train.clip.mode: norm}}
"""


def _space(text: str) -> SearchSpace:
    return parse_search_space(yaml.safe_load(text))


def _refusal(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_search_space(raw)
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


def _asks(space: SearchSpace, n: int, seed: int = 0) -> list[dict[str, Any]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        space.define_by_run(trial)
        out.append(dict(trial.params))
        study.tell(trial, 0.0)
    return out


# --- leaves -> Optuna distributions ----------------------------------------------------------


def test_each_leaf_form_becomes_the_matching_optuna_distribution() -> None:
    space = _space(
        """
        params:
          model:
            init:
              recurrent: {choices: [default, orthogonal]}
            dropout: {low: 0.0, high: 0.6}
            hidden_size: {low: 16, high: 128, int: true, step: 16}
            num_layers: {low: 1, high: 4, int: true}
          train:
            lr: {low: 1.0e-4, high: 1.0e-1, log: true}
            batch_size: {values: [32, 64]}
            momentum: {low: 0.0, high: 0.9, step: 0.1}
        """
    )
    assert space.distributions() == {
        "model.init.recurrent": CategoricalDistribution(["default", "orthogonal"]),
        "model.dropout": FloatDistribution(0.0, 0.6),
        "model.hidden_size": IntDistribution(16, 128, step=16),
        "model.num_layers": IntDistribution(1, 4),
        "train.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "train.batch_size": CategoricalDistribution([32, 64]),
        "train.momentum": FloatDistribution(0.0, 0.9, step=0.1),
    }


def test_nested_and_dotted_yaml_forms_name_the_same_config_key() -> None:
    nested = _space("params: {train: {clip: {threshold: {low: 0.1, high: 10.0}}}}")
    dotted = _space("params: {train.clip.threshold: {low: 0.1, high: 10.0}}")
    assert nested.distributions() == dotted.distributions()
    assert list(nested.distributions()) == ["train.clip.threshold"]


def test_yaml_exponent_without_a_dot_is_read_as_a_number() -> None:
    # PyYAML reads `1e-3` as a string; the space must still mean 0.001.
    space = _space("params: {train: {lr: {low: 1e-5, high: 1e-3, log: true}}}")
    assert space.distributions()["train.lr"] == FloatDistribution(1e-5, 1e-3, log=True)


def test_log_uniform_int_parameter_is_an_int_distribution_on_a_log_scale() -> None:
    space = _space("params: {model: {hidden_size: {low: 8, high: 512, int: true, log: true}}}")
    assert space.distributions()["model.hidden_size"] == IntDistribution(8, 512, log=True)


def test_group_choices_are_categorical_parameters_named_group_dot_group() -> None:
    space = _space(
        "groups: {model: [rnn, lstm]}\nparams: {train: {lr: {low: 0.001, high: 0.1, log: true}}}"
    )
    dists = space.distributions()
    assert dists["group.model"] == CategoricalDistribution(["rnn", "lstm"])
    assert list(dists) == ["group.model", "train.lr"]  # groups are decided first


def test_shipped_default_space_searches_init_dropout_clip_and_lr_as_the_issue_asks() -> None:
    raw = yaml.safe_load((conf_dir() / "search" / "init_dropout_clip.yaml").read_text())
    space = parse_search_space(raw)
    dists = space.distributions()
    assert dists["group.model"] == CategoricalDistribution(["rnn", "lstm"])
    assert isinstance(dists["model.init.recurrent"], CategoricalDistribution)
    assert isinstance(dists["model.init.input"], CategoricalDistribution)
    assert dists["model.dropout"] == FloatDistribution(0.0, 0.6)
    assert dists["train.clip.mode"] == CategoricalDistribution(["none", "norm"])
    assert dists["train.clip.threshold"] == FloatDistribution(0.01, 100.0, log=True)
    assert dists["train.lr"].log
    (threshold,) = [p for p in space.params if p.name == "train.clip.threshold"]
    assert threshold.when == (("train.clip.mode", "norm"),)


@pytest.mark.parametrize("name", ["init_dropout_clip", "init_only", "lr_clip"])
def test_every_shipped_search_space_parses(name: str) -> None:
    raw = yaml.safe_load((conf_dir() / "search" / f"{name}.yaml").read_text())
    assert parse_search_space(raw).name == name


# --- define-by-run on a real Optuna study ----------------------------------------------------


def test_define_by_run_suggests_the_clip_threshold_only_when_clipping_is_norm() -> None:
    sampled = _asks(_space(CLIP_SPACE), 40)
    modes = {p["train.clip.mode"] for p in sampled}
    assert modes == {"none", "norm"}, "both branches must be exercised"
    for params in sampled:
        has_threshold = "train.clip.threshold" in params
        assert has_threshold == (params["train.clip.mode"] == "norm"), params
        if has_threshold:
            assert 0.01 <= params["train.clip.threshold"] <= 100.0


def test_conditional_parameter_written_before_its_condition_is_still_suggested() -> None:
    # YAML order must not matter: define-by-run has to sample the condition first.
    space = _space(
        """
        params:
          train.clip.threshold: {low: 0.01, high: 100.0, log: true, when: {train.clip.mode: norm}}
          train.clip.mode: {choices: [none, norm]}
        """
    )
    sampled = _asks(space, 30)
    with_norm = [p for p in sampled if p["train.clip.mode"] == "norm"]
    assert with_norm
    assert all("train.clip.threshold" in p for p in with_norm)
    assert all("train.clip.threshold" not in p for p in sampled if p not in with_norm)


def test_parameter_conditional_on_a_group_choice_is_suggested_only_for_that_option() -> None:
    space = _space(
        """
        groups: {model: [rnn, lstm]}
        params:
          model.init.forget_bias: {low: 0.0, high: 2.0, when: {group.model: lstm}}
        """
    )
    sampled = _asks(space, 30)
    assert {p["group.model"] for p in sampled} == {"rnn", "lstm"}
    for params in sampled:
        assert ("model.init.forget_bias" in params) == (params["group.model"] == "lstm")


def test_tpe_sampler_from_config_runs_the_conditional_space() -> None:
    space = _space(CLIP_SPACE)
    study = optuna.create_study(sampler=build_sampler("tpe", space, seed=0))
    study.optimize(
        lambda t: (space.define_by_run(t), t.params.get("train.clip.threshold", 1.0))[1],
        n_trials=12,
    )
    assert len(study.trials) == 12


# --- grid --------------------------------------------------------------------------------------


def test_grid_lists_every_value_of_categorical_values_and_stepped_int_parameters() -> None:
    space = _space(
        """
        groups: {model: [rnn, lstm]}
        params:
          model.init.recurrent: {choices: [default, orthogonal]}
          train.lr: {values: [0.001, 0.01]}
          model.hidden_size: {low: 16, high: 48, int: true, step: 16}
        """
    )
    assert space.grid() == {
        "group.model": ["rnn", "lstm"],
        "model.init.recurrent": ["default", "orthogonal"],
        "train.lr": [0.001, 0.01],
        "model.hidden_size": [16, 32, 48],
    }
    assert space.grid_size() == 2 * 2 * 2 * 3


def test_grid_sampler_visits_every_grid_point_exactly_once() -> None:
    space = _space(
        "params: {model.init.recurrent: {choices: [default, orthogonal, identity]},"
        " train.lr: {values: [0.001, 0.01]}}"
    )
    study = optuna.create_study(sampler=build_sampler("grid", space, seed=0))
    study.optimize(lambda t: (space.define_by_run(t), 0.0)[1], n_trials=space.grid_size())
    seen = [(t.params["model.init.recurrent"], t.params["train.lr"]) for t in study.trials]
    expected = itertools.product(["default", "orthogonal", "identity"], [0.001, 0.01])
    assert sorted(seen) == sorted(expected)


@pytest.mark.parametrize(
    ("leaf", "needle"),
    [
        ("{low: 0.0, high: 0.6}", "continuous"),
        ("{low: 1, high: 4, int: true}", "continuous"),  # an int without a step: no grid either
    ],
)
def test_grid_of_a_continuous_parameter_is_refused_in_one_line(leaf: str, needle: str) -> None:
    space = _space(f"params: {{model.dropout: {leaf}}}")
    with pytest.raises(ConfigError) as info:
        space.grid()
    assert "\n" not in str(info.value)
    assert "model.dropout" in str(info.value)
    assert needle in str(info.value)


def test_grid_of_a_conditional_parameter_is_refused_in_one_line() -> None:
    space = _space(
        "params: {train.clip.mode: {choices: [none, norm]},"
        " train.clip.threshold: {values: [0.1, 1.0], when: {train.clip.mode: norm}}}"
    )
    with pytest.raises(ConfigError, match=r"train\.clip\.threshold.*conditional") as info:
        space.grid()
    assert "\n" not in str(info.value)


# --- group combinations ------------------------------------------------------------------------


def test_group_combinations_are_the_cartesian_product_of_group_options() -> None:
    space = _space("groups: {model: [rnn, lstm, gru], task: [adding, copy]}")
    combos = group_combinations(space)
    assert len(combos) == 6
    assert {(c["model"], c["task"]) for c in combos} == set(
        itertools.product(["rnn", "lstm", "gru"], ["adding", "copy"])
    )
    assert len({combo_key(c) for c in combos}) == 6
    assert combo_key({"task": "copy", "model": "gru"}) == "model=gru,task=copy"


def test_space_without_groups_has_one_combination_the_base() -> None:
    combos = group_combinations(_space(CLIP_SPACE))
    assert combos == [{}]
    assert combo_key(combos[0]) == "base"


# --- refusals: one line naming the problem -----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "needles"),
    [
        pytest.param(
            "params: {model.dropout: {low: 0.7, high: 0.2}}",
            ["model.dropout", "low=0.7", "high=0.2"],
            id="low-above-high",
        ),
        pytest.param(
            "params: {model.dropout: {low: 0.3, high: 0.3}}",
            ["model.dropout", "low=0.3", "high=0.3"],
            id="low-equals-high",
        ),
        pytest.param(
            "params: {train.lr: {low: 0.0, high: 0.1, log: true}}",
            ["train.lr", "log", "low=0"],
            id="log-with-zero-low",
        ),
        pytest.param(
            "params: {train.lr: {low: -1.0, high: 0.1, log: true}}",
            ["train.lr", "log", "low=-1"],
            id="log-with-negative-low",
        ),
        pytest.param(
            "params: {model.init.recurrent: {choices: []}}",
            ["model.init.recurrent.choices", "non-empty"],
            id="empty-choices",
        ),
        pytest.param(
            "params: {train.batch_size: {values: []}}",
            ["train.batch_size.values", "non-empty"],
            id="empty-values",
        ),
        pytest.param(
            "params: {model.init.recurrent: {choices: [orthogonal, default, orthogonal]}}",
            ["model.init.recurrent", "duplicates"],
            id="duplicate-choices",
        ),
        pytest.param(
            "params: {model.dropout: {low: 0.0, high: 0.5, lgo: true}}",
            ["model.dropout", "unknown field", "lgo"],
            id="unknown-field-in-leaf",
        ),
        pytest.param(
            "params: {model.dropout: {low: 0.0, high: 0.5}, train.clip.threshold:"
            " {low: 0.1, high: 1.0, when: {train.clip.mode: norm}}}",
            ["train.clip.threshold.when", "train.clip.mode", "not searched"],
            id="when-on-unsearched-key",
        ),
        pytest.param(
            "params: {train.clip.mode: {choices: [none, norm]}, train.clip.threshold:"
            " {low: 0.1, high: 1.0, when: {train.clip.mode: value}}}",
            ["train.clip.threshold.when", "'value'", "none", "norm"],
            id="when-value-not-a-choice",
        ),
        pytest.param(
            "groups: {model: [rnn, lstm]}\nparams: {model.init.forget_bias:"
            " {low: 0.0, high: 1.0, when: {group.model: gru}}}",
            ["model.init.forget_bias.when", "'gru'", "rnn", "lstm"],
            id="when-value-not-a-group-option",
        ),
        pytest.param(
            "params: {model.dropout: {low: 0.0, high: 0.5}, train.lr:"
            " {low: 0.001, high: 0.1, when: {model.dropout: 0.1}}}",
            ["train.lr.when", "model.dropout", "continuous"],
            id="when-on-continuous-parameter",
        ),
        pytest.param(
            "params: {a: {choices: [1, 2], when: {b: 1}}, b: {choices: [1, 2], when: {a: 1}}}",
            ["cycle", "a", "b"],
            id="when-cycle",
        ),
        pytest.param(
            "params: {model.hidden_size: {low: 8.5, high: 64, int: true}}",
            ["model.hidden_size.low=8.5", "whole"],
            id="int-with-fractional-bound",
        ),
        pytest.param(
            "params: {model.hidden_size: {low: 8, high: 64, int: true, step: 0.5}}",
            ["model.hidden_size.step=0.5", "whole"],
            id="int-with-fractional-step",
        ),
        pytest.param(
            "params: {model.dropout: {low: 0.0, high: 0.5, step: -0.1}}",
            ["model.dropout.step=-0.1", "> 0"],
            id="negative-step",
        ),
        pytest.param(
            "params: {model.dropout: {choices: [0.1, 0.2], low: 0.0, high: 0.5}}",
            ["model.dropout", "choices", "low/high"],
            id="choices-and-bounds-together",
        ),
        pytest.param(
            "params: {model.dropout: {low: 0.0}}",
            ["model.dropout", "low and high"],
            id="missing-high",
        ),
        pytest.param(
            "params: {model.dropout: {low: zero, high: 0.5}}",
            ["model.dropout.low='zero'", "number"],
            id="non-numeric-bound",
        ),
        pytest.param(
            "params: {model.dropout: 0.3}",
            ["model.dropout=0.3", "choices, low/high or values"],
            id="bare-value-instead-of-leaf",
        ),
        pytest.param(
            "params: {model: {dropout: {}}}",
            ["model.dropout", "choices, low/high or values"],
            id="empty-leaf",
        ),
        pytest.param(
            "groups: {model: []}",
            ["search.groups.model", "non-empty"],
            id="empty-group",
        ),
        pytest.param(
            "groups: {model: [rnn, lstm, rnn]}",
            ["search.groups.model", "duplicates"],
            id="duplicate-group-options",
        ),
        pytest.param("name: empty\nparams: {}", ["no parameters"], id="no-parameters"),
        pytest.param(
            "params: {train.lr: {low: 0.001, high: 0.1}}\nparms: {}",
            ["unknown field", "parms"],
            id="unknown-top-level-field",
        ),
    ],
)
def test_bad_search_space_is_refused_in_one_line_naming_the_problem(
    text: str, needles: list[str]
) -> None:
    message = _refusal(yaml.safe_load(text))
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"


def test_missing_search_space_says_how_to_pick_one() -> None:
    message = _refusal({})
    assert "search=NAME" in message
