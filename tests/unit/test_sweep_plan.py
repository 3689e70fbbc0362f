"""`build_plan`: composing and validating a whole sweep in the driver, before Ray starts.

Real Hydra composition and the real schemas, no Ray: every config a trial can receive is
composed here, and every refusal is one line that names what was wrong.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnlab.config import ConfigError
from rnnlab.sweep.plan import SweepPlan, build_plan, build_trial_config

LR_CLIP_OVER_MODELS = ["search=lr_clip", "+search.groups.model=[rnn,lstm]"]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models-plan")


@pytest.fixture(scope="module")
def models_plan(models_dir: Path) -> SweepPlan:
    """lr x clip threshold over `model: [rnn, lstm]`, built once for the module (composing is
    the slow part); tests only read it."""
    return build_plan(LR_CLIP_OVER_MODELS, cwd=models_dir)


def _refusal(tmp_path: Path, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        build_plan(list(overrides), cwd=tmp_path)
    message = str(info.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


# --- one base config per group combination ---------------------------------------------------


def test_plan_composes_one_validated_base_config_per_model_with_its_own_cell(
    models_plan: SweepPlan,
) -> None:
    plan = models_plan
    assert sorted(plan.bases) == ["model=lstm", "model=rnn"]
    assert plan.bases["model=rnn"]["model"]["cell"] == "rnn"
    assert plan.bases["model=lstm"]["model"]["cell"] == "lstm"
    # the rest of each base is the same composed sweep config
    assert plan.bases["model=rnn"]["task"] == plan.bases["model=lstm"]["task"]


def test_plan_over_two_groups_composes_every_combination(tmp_path: Path) -> None:
    plan = build_plan(
        ["search=lr_clip", "+search.groups.model=[rnn,gru]", "+search.groups.task=[adding,copy]"],
        cwd=tmp_path,
    )
    assert sorted(plan.bases) == [
        "model=gru,task=adding",
        "model=gru,task=copy",
        "model=rnn,task=adding",
        "model=rnn,task=copy",
    ]
    for key, base in plan.bases.items():
        model, task = (part.split("=")[1] for part in key.split(","))
        assert (base["model"]["cell"], base["task"]["name"]) == (model, task)


def test_plan_without_groups_has_one_base_config(tmp_path: Path) -> None:
    plan = build_plan(["search=lr_clip", "model=gru"], cwd=tmp_path)
    assert list(plan.bases) == ["base"]
    assert plan.bases["base"]["model"]["cell"] == "gru"


def test_plan_resolves_the_store_and_sweep_folder_against_the_launch_directory(
    tmp_path: Path,
) -> None:
    plan = build_plan(["search=lr_clip", "sweep.name=mine"], cwd=tmp_path)
    assert plan.folder == tmp_path / "rnnlab-sweeps" / "mine"
    for base in plan.bases.values():
        assert base["tracking"]["uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_plan_defaults_to_the_tasks_validation_metric_and_direction(tmp_path: Path) -> None:
    plan = build_plan([], cwd=tmp_path)
    assert (plan.metric, plan.mode) == ("val/mse", "min")
    assert plan.name.startswith("adding-rnn+lstm-")  # <task>-<model>-<timestamp>


@pytest.mark.parametrize(
    ("task", "metric", "mode"),
    [
        ("copy", "val/loss", "min"),
        ("digits", "val/accuracy", "max"),
        ("ptb_char", "val/bpc", "min"),
        ("csv_series", "val/mase", "min"),  # no task.path yet: the task cannot be built
    ],
)
def test_plan_takes_a_builtin_tasks_metric_from_its_schema_without_building_the_task(
    tmp_path: Path, task: str, metric: str, mode: str
) -> None:
    plan = build_plan([f"task={task}", "search=lr_clip"], cwd=tmp_path, probe=False)
    assert (plan.metric, plan.mode) == (metric, mode)


def test_building_a_plan_creates_nothing_in_the_working_directory(
    models_plan: SweepPlan, models_dir: Path
) -> None:
    assert models_plan.folder.parent.parent == models_dir
    assert list(models_dir.iterdir()) == []


# --- a trial's config: its combination plus its sampled values -------------------------------


def test_trial_config_applies_the_group_choice_and_sampled_dotted_values(
    models_plan: SweepPlan,
) -> None:
    plan = models_plan
    cfg = build_trial_config(
        plan.bases,
        {"group.model": "lstm", "train.lr": 0.0123, "train.clip.threshold": 4.5},
    )
    assert cfg.model.cell == "lstm"
    assert cfg.train.lr == pytest.approx(0.0123)
    assert cfg.train.clip.threshold == pytest.approx(4.5)
    other = plan.trial_config({"group.model": "rnn", "train.lr": 0.002, "train.clip.threshold": 1})
    assert other.model.cell == "rnn"
    assert other.train.lr == pytest.approx(0.002)


def test_trial_config_leaves_the_base_configs_untouched(models_plan: SweepPlan) -> None:
    plan = models_plan
    before = plan.bases["model=rnn"]["train"]["lr"]
    build_trial_config(plan.bases, {"group.model": "rnn", "train.lr": before * 7})
    assert plan.bases["model=rnn"]["train"]["lr"] == before


def test_trial_config_with_an_out_of_schema_value_is_refused_in_one_line(
    models_plan: SweepPlan,
) -> None:
    with pytest.raises(ConfigError, match=r"train\.clip\.threshold") as info:
        build_trial_config(models_plan.bases, {"group.model": "rnn", "train.clip.threshold": -1.0})
    assert "\n" not in str(info.value)


def test_parameter_conditional_on_a_model_is_validated_only_against_that_model(
    tmp_path: Path,
) -> None:
    # A forget-gate bias is an error on a tanh RNN; searched only for the LSTM it is fine.
    plan = build_plan(
        [
            *LR_CLIP_OVER_MODELS,
            "+search.params.model.init.forget_bias={low: 0.0, high: 2.0, when: {group.model: lstm}}",
        ],
        cwd=tmp_path,
    )
    cfg = plan.trial_config({"group.model": "lstm", "model.init.forget_bias": 1.5})
    assert cfg.model.init.forget_bias == pytest.approx(1.5)
    # ... and still refused where it would apply to the RNN
    message = _refusal(
        tmp_path,
        *LR_CLIP_OVER_MODELS,
        "+search.params.model.init.forget_bias={low: 0.0, high: 2.0}",
    )
    assert "forget" in message


# --- a group the user chose is not searched by the default study ---------------------------------


def _cells(plan: SweepPlan) -> set[str]:
    return {base["model"]["cell"] for base in plan.bases.values()}


def test_a_model_chosen_on_the_command_line_is_the_model_the_default_study_sweeps(
    tmp_path: Path,
) -> None:
    default = build_plan([], cwd=tmp_path)
    assert default.space.groups == {"model": ("rnn", "lstm")}
    plan = build_plan(["model=gru"], cwd=tmp_path)
    assert "model" not in plan.space.groups
    assert _cells(plan) == {"gru"}
    assert plan.trial_config({"model.dropout": 0.1}).model.cell == "gru"
    # the rest of the default study is still searched
    assert {p.name for p in plan.space.params} == {p.name for p in default.space.params}


def test_an_experiments_model_is_kept_when_it_names_no_search(tmp_path: Path) -> None:
    plan = build_plan(["experiment=copy_gru"], cwd=tmp_path)
    assert _cells(plan) == {"gru"}
    assert plan.base_cfg.task.name == "copy"


def test_a_parameter_conditioned_on_a_pinned_group_follows_the_chosen_option(
    tmp_path: Path,
) -> None:
    bias = "+search.params.model.init.forget_bias={low: 0.0, high: 2.0, when: {group.model: lstm}}"
    lstm = build_plan(["model=lstm", bias], cwd=tmp_path)
    param = next(p for p in lstm.space.params if p.name == "model.init.forget_bias")
    assert param.when == ()  # always active: the model is the LSTM
    gru = build_plan(["model=gru", bias], cwd=tmp_path)
    assert "model.init.forget_bias" not in {p.name for p in gru.space.params}


def test_a_named_search_keeps_its_groups_and_refuses_a_model_it_does_not_compare(
    tmp_path: Path,
) -> None:
    plan = build_plan(["search=rnn_vs_lstm", "model=lstm"], cwd=tmp_path)
    assert set(plan.space.groups["model"]) == {"rnn", "lstm"}
    message = _refusal(tmp_path, "search=rnn_vs_lstm", "model=gru")
    assert "model=gru" in message and "search.groups.model=" in message


# --- refusals that need the composed config ----------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "needles"),
    [
        pytest.param(
            ["+search.params.model.nope={choices: [1, 2]}"],
            ["search.params.model.nope", "no such config key"],
            id="unknown-searched-key",
        ),
        pytest.param(
            ["search.params.model.dropout.high=1.5"],
            ["search.params.model.dropout", "1.5", "[0, 1)"],
            id="bound-outside-schema",
        ),
        pytest.param(
            ["search.params.model.init.recurrent.choices=[orthogonal,telepathic]"],
            ["search.params.model.init.recurrent", "telepathic"],
            id="choice-outside-schema",
        ),
        pytest.param(
            ["sweep.sampler=grid"],
            ["sweep.sampler=grid", "model.dropout", "continuous"],
            id="grid-with-continuous-parameter",
        ),
        pytest.param(
            ["search=init_only", "sweep.sampler=grid", "sweep.trials=6"],
            ["sweep.trials=6", "only 5 points"],
            id="grid-with-more-trials-than-points",
        ),
        pytest.param(
            ["search=init_only", "sweep.sampler=cmaes"],
            ["sweep.sampler=cmaes", "continuous"],
            id="cmaes-with-only-categorical-parameters",
        ),
        pytest.param(
            ["sweep.initial_points=[{train.lr: 5.0}]"],
            ["sweep.initial_points", "train.lr=5.0", "outside the search space"],
            id="initial-point-outside-space",
        ),
        pytest.param(
            ["sweep.initial_points=[{train.clip.mode: value}]"],
            ["sweep.initial_points", "train.clip.mode='value'", "outside"],
            id="initial-point-not-a-choice",
        ),
        pytest.param(
            ["sweep.initial_points=[{model.hidden_size: 32}]"],
            ["sweep.initial_points", "model.hidden_size is not searched", "train.lr"],
            id="initial-point-naming-unsearched-key",
        ),
        pytest.param(
            ["sweep.sampler=bogus"],
            ["sweep.sampler='bogus'", "tpe", "grid"],
            id="unknown-sampler",
        ),
        pytest.param(["sweep.trials=0"], ["sweep.trials=0"], id="zero-trials"),
        pytest.param(["sweep.name=a/b"], ["sweep.name='a/b'", "slash"], id="name-with-slash"),
        pytest.param(["sweep.scheduler=hyperband"], ["sweep.scheduler"], id="unknown-scheduler"),
        pytest.param(
            ["sweep.metric=val/nope"], ["sweep.metric='val/nope'", "val/mse"], id="metric"
        ),
        pytest.param(
            ["search=nope"],
            ["search='nope'", "init_dropout_clip", "init_only", "lr_clip"],
            id="unknown-search-space",
        ),
        pytest.param(
            ["search=lr_clip", "+search.groups.nope=[a,b]"],
            ["search.groups.nope", "not a config group", "model"],
            id="unknown-group",
        ),
        pytest.param(
            ["search=lr_clip", "+search.groups.model=[rnn,transformer]"],
            ["transformer", "lstm"],
            id="unknown-group-option",
        ),
    ],
)
def test_bad_sweep_is_refused_in_one_line_naming_the_problem(
    tmp_path: Path, overrides: list[str], needles: list[str]
) -> None:
    message = _refusal(tmp_path, *overrides)
    for needle in needles:
        assert needle in message, f"{needle!r} not in {message!r}"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("grace", "rf", "max_t"), [(3, 3, 16), (1, 3, 28), (2, 2, 11), (5, 3, 5), (1, 4, 2)]
)
def test_asha_rungs_are_the_iterations_ray_decides_at(grace, rf, max_t) -> None:
    from ray.tune.schedulers.async_hyperband import _Bracket

    from rnnlab.sweep.trial import asha_rungs

    ray_rungs = sorted(m for m, _ in _Bracket(grace, max_t, rf, 0)._rungs)
    assert list(asha_rungs(grace, rf, max_t)) == ray_rungs


def test_the_winner_line_reads_whatever_subset_of_the_space_was_searched() -> None:
    from rnnlab.sweep.runner import _winner

    assert _winner({"train.clip.mode": "norm", "train.clip.threshold": 2.5}) == "clip norm at 2.5"
    # clip_on_off searches the mode only: the threshold comes from the config
    assert _winner({"train.clip.mode": "norm"}) == "clip norm"
    assert _winner({"group.model": "lstm", "train.clip.mode": "none"}) == "model=lstm, no clipping"
