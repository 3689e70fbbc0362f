"""A user's own model (`model._target_`) and task (`task._target_`) train, sweep and evaluate
like the built-in ones. The user code is tests/fixtures/my_pkg, the example of docs/extending.md.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from rnnlab.config import ConfigError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
USER_ENV = {"PYTHONPATH": str(FIXTURES)}

LEAKY = ["model=custom", "model._target_=my_pkg.models.LeakyRNN", "model.hidden_size=8"]
PARITY = ["task=custom", "task._target_=my_pkg.tasks.ParityDataModule"]
SMALL_ADDING = [
    "task=adding",
    "task.seq_len=10",
    "task.train_size=128",
    "task.val_size=32",
    "task.test_size=32",
]


@pytest.fixture
def user_pkg(monkeypatch: pytest.MonkeyPatch) -> None:
    """my_pkg importable in this process (the CLI tests pass USER_ENV instead)."""
    monkeypatch.syspath_prepend(str(FIXTURES))


def _load(*overrides: str):
    from rnnlab.cli import load_run_config

    return load_run_config("train", list(overrides))


def test_user_model_trains_through_model_target_and_is_tracked_like_a_built_in(
    run_cli, mlflow_store, tmp_path, user_pkg
) -> None:
    rc, out, err = run_cli(
        tmp_path,
        "train",
        *LEAKY,
        "+model.options.leak=0.7",
        "model.init.recurrent=orthogonal",
        *SMALL_ADDING,
        "train.max_epochs=2",
        "diagnostics.gradient_flow=true",
        "diagnostics.spectra=true",
        env=USER_ENV,
    )
    assert rc == 0, err
    assert "outcome: completed" in out
    run = mlflow_store.only_run()
    params = run.data.params
    assert params["model._target_"] == "my_pkg.models.LeakyRNN"
    assert params["model.options.leak"] == "0.7"
    assert [s for s, _ in mlflow_store.history(run.info.run_id, "val/mse")] == [0, 1]
    # the diagnostics hook `net.layers` and find `weight_hh_l0` in a user model too
    metrics = run.data.metrics
    assert any(k.startswith("gradflow/l0/") for k in metrics), sorted(metrics)
    assert any(k.startswith("spectra/l0/") for k in metrics), sorted(metrics)
    assert "checkpoints" in mlflow_store.artifacts(run.info.run_id)

    # ... and `rnnlab eval` rebuilds the user model from the logged config
    from rnnlab.evaluation import evaluate_run

    scores = evaluate_run(
        run.info.run_id, ["task.seq_len=20"], mlflow_store.uri, stream=io.StringIO()
    )
    assert "eval/test/len20/mse" in scores


def test_user_task_trains_through_task_target_with_its_own_config(tmp_path, user_pkg) -> None:
    from mlflow.tracking import MlflowClient

    from rnnlab.training.tracked import train_tracked

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = _load(
        *PARITY,
        "+task.seq_len=6",
        "+task.train_size=128",
        "+task.val_size=32",
        "+task.test_size=32",
        "model=gru",
        "model.hidden_size=8",
        "train.max_epochs=1",
        f"tracking.uri={uri}",
    )
    result = train_tracked(cfg)
    assert result.outcome == "completed"
    run = MlflowClient(tracking_uri=uri).get_run(result.run.run_id)
    assert run.data.tags["rnnlab.task"] == "parity"  # the Config's own default name
    assert run.data.params["task._target_"] == "my_pkg.tasks.ParityDataModule"
    assert run.data.params["task.seq_len"] == "6"
    assert 0.0 <= run.data.metrics["val/accuracy"] <= 1.0
    assert run.data.metrics["baseline/accuracy"] == 0.5


def test_user_code_mistakes_are_refused_in_one_line_before_any_run(user_pkg) -> None:
    cases = {
        r"model=custom needs model._target_": ["model=custom"],
        r"cannot import it \(No module named 'my_pkg.nope'\)": [
            "model=custom",
            "model._target_=my_pkg.nope.Net",
        ],
        r"not a torch.nn.Module subclass": [
            "model=custom",
            "model._target_=my_pkg.tasks.ParityConfig",
        ],
        r"__init__ must take \(cfg: ModelConfig, spec: TaskSpec\)": [
            "model=custom",
            "model._target_=my_pkg.broken.TakesNoSpec",
        ],
        r"model.options.leak=2: must be in \(0, 1\]": [*LEAKY, "+model.options.leak=2"],
        r"unknown config key 'model.options.lek'": [*LEAKY, "+model.options.lek=0.5"],
        r"options are for a user model": ["model=rnn", "+model.options.leak=0.5"],
        r"task=custom needs task._target_": ["task=custom"],
        r"not a subclass of rnnlab.data.SequenceDataModule": [
            "task=custom",
            "task._target_=my_pkg.models.LeakyRNN",
        ],
        r"task.seq_len=0: must be >= 1": [*PARITY, "+task.seq_len=0"],
    }
    for message, overrides in cases.items():
        with pytest.raises(ConfigError, match=message) as err:
            _load(*overrides)
        assert "\n" not in str(err.value)


def test_a_model_returning_the_wrong_thing_fails_in_one_line_when_built(user_pkg) -> None:
    from rnnlab.models import build_model
    from rnnlab.training.fit import build_datamodule

    cfg = _load("model=custom", "model._target_=my_pkg.broken.ReturnsTensor", *SMALL_ADDING)
    spec = build_datamodule(cfg).spec
    with pytest.raises(ConfigError, match=r"forward must return rnnlab.models.ModelOutput"):
        build_model(cfg.model, spec)


# --- sweeps -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_with_user_pkg():
    """A loopback Ray whose workers import my_pkg (PYTHONPATH is read when workers start)."""
    from rnnlab.sweep.ray_runtime import use_loopback

    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(FIXTURES), previous) if p)
    use_loopback()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()
        if previous is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = previous


@pytest.mark.slow
def test_sweep_searches_a_user_models_own_option_and_init(
    tmp_path, monkeypatch, ray_with_user_pkg, user_pkg
) -> None:
    from mlflow.tracking import MlflowClient

    from rnnlab.sweep.plan import build_plan
    from rnnlab.sweep.runner import preflight, run_sweep

    monkeypatch.chdir(tmp_path)
    plan = build_plan(
        [
            *LEAKY,
            *SMALL_ADDING,
            "train.max_epochs=1",
            "diagnostics.plots=false",
            "search=init_only",
            "search.params.model.init.recurrent.choices=[orthogonal,default]",
            "+search.params.model.options.leak={low: 0.2, high: 1.0}",
            "sweep.trials=2",
            "sweep.max_concurrent=2",
            "sweep.scheduler=none",
            "sweep.final_seeds=0",
            "sweep.progress=false",
            "sweep.name=leaky",
        ]
    )
    preflight(plan)
    summary = run_sweep(plan)
    assert summary.status == "finished"
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("rnnlab")
    children = client.search_runs(
        [exp.experiment_id], filter_string="tags.`rnnlab.sweep` = 'leaky'"
    )
    trials = [c for c in children if c.data.tags.get("rnnlab.role") == "search"]
    assert len(trials) == 2
    for trial in trials:
        assert trial.data.tags["rnnlab.outcome"] == "completed", trial.data.tags.get("rnnlab.error")
        params = trial.data.params
        assert params["model._target_"] == "my_pkg.models.LeakyRNN"
        assert float(params["model.options.leak"]) == pytest.approx(
            float(params["sampled.model.options.leak"])
        )
        assert 0.2 <= float(params["model.options.leak"]) <= 1.0
