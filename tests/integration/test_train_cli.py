"""`rnnlab train` in an empty folder: one complete MLflow run, and what the user is told."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

INTEGRATION_DIR = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def adding_run(run_cli, open_store, tiny, tmp_path_factory):
    """The issue's first 'done when' command, sized down, run once for this module."""
    folder = tmp_path_factory.mktemp("train_adding")
    result = run_cli(folder, "train", *tiny, "train.max_epochs=2")
    assert result.rc == 0, result.stderr
    store = open_store(folder)
    return folder, result, store, store.only_run()


def test_train_in_an_empty_folder_exits_0_and_leaves_exactly_one_run(adding_run) -> None:
    folder, _, store, run = adding_run
    assert (folder / "mlflow.db").is_file()
    assert not (folder / "outputs").exists()  # no Hydra output folders
    assert len(store.runs()) == 1
    assert run.info.status == "FINISHED"
    assert run.data.tags["rnnlab.outcome"] == "completed"


def test_train_logs_the_flattened_config_as_params(adding_run) -> None:
    _, _, _, run = adding_run
    params = run.data.params
    assert params["model.hidden_size"] == "16"
    assert params["model.init.recurrent"] == "orthogonal"
    assert params["model.init.forget_bias"] == "1.0"
    assert params["train.clip.threshold"] == "1.0"
    assert params["train.clip.mode"] == "norm"
    assert params["task.seq_len"] == "30"
    assert params["train.max_epochs"] == "2"
    assert params["hardware.precision"] == "32"
    assert params["tracking.uri"].startswith("sqlite:////")  # made absolute in the driver


def test_train_logs_train_and_val_loss_once_per_epoch(adding_run) -> None:
    _, _, store, run = adding_run
    for key in ("train/loss", "val/loss", "val/mse", "lr", "train/grad_norm"):
        history = store.history(run.info.run_id, key)
        assert [step for step, _ in history] == [0, 1], key
    assert store.history(run.info.run_id, "train/clip_fraction")[0][1] <= 1.0


def test_test_metrics_are_logged_once_after_the_last_epoch(adding_run) -> None:
    _, _, store, run = adding_run
    assert [step for step, _ in store.history(run.info.run_id, "test/loss")] == [2]
    assert store.history(run.info.run_id, "baseline/mse") == [(0, pytest.approx(0.167))]


def test_train_tags_record_git_state_version_seed_and_task(adding_run) -> None:
    import rnnlab

    _, _, _, run = adding_run
    tags = run.data.tags
    assert len(tags["rnnlab.git_commit"]) == 40
    assert tags["rnnlab.git_dirty"] in ("true", "false")
    assert tags["rnnlab.version"] == rnnlab.__version__
    assert tags["rnnlab.seed"] == "0"
    assert (tags["rnnlab.task"], tags["rnnlab.model"]) == ("adding", "lstm")


def test_train_stores_the_config_yaml_and_installed_packages(adding_run, tmp_path) -> None:
    _, _, store, run = adding_run
    client, run_id = store.client, run.info.run_id
    assert {"config.yaml", "environment", "checkpoints"} <= set(store.artifacts(run_id))
    assert store.artifacts(run_id, "environment") == ["environment/packages.txt"]
    config = yaml.safe_load(
        Path(client.download_artifacts(run_id, "config.yaml", tmp_path)).read_text()
    )
    assert config["model"]["hidden_size"] == 16
    assert config["train"]["clip"] == {"mode": "norm", "threshold": 1.0}
    packages = Path(client.download_artifacts(run_id, "environment/packages.txt", tmp_path))
    names = {line.split("==")[0].lower() for line in packages.read_text().splitlines()}
    assert {"torch", "pytorch-lightning", "mlflow", "hydra-core"} <= names


def test_train_prints_final_metrics_the_run_id_and_how_to_open_the_ui(adding_run) -> None:
    _, result, _, run = adding_run
    assert "outcome: completed" in result.stdout
    assert "val/loss" in result.stdout and "test/loss" in result.stdout
    assert f"mlflow run: {run.info.run_id}" in result.stdout
    assert "rnnlab ui" in result.stdout


def test_irnn_trains_on_digits_with_limited_batches(run_cli, mlflow_store, tmp_path) -> None:
    rc, out, err = run_cli(
        tmp_path,
        "train",
        "model=irnn",
        "task=digits",
        "train.max_epochs=1",
        "train.limit_batches=5",
    )
    assert rc == 0, err
    assert "outcome: completed" in out
    run = mlflow_store.only_run()
    assert run.data.tags["rnnlab.outcome"] == "completed"
    assert run.data.params["model.init.recurrent"] == "identity"
    assert run.data.params["model.nonlinearity"] == "relu"
    assert run.data.params["train.limit_batches"] == "5"


def test_gru_trains_on_copy_with_bf16_mixed_precision(run_cli, mlflow_store, tmp_path) -> None:
    rc, out, err = run_cli(
        tmp_path,
        "train",
        "model=gru",
        "task=copy",
        "task.seq_len=10",
        "task.train_size=256",
        "task.val_size=64",
        "task.test_size=64",
        "train.max_epochs=1",
        "hardware.precision=bf16-mixed",
    )
    assert rc == 0, err
    run = mlflow_store.only_run()
    assert run.data.params["hardware.precision"] == "bf16-mixed"
    assert run.data.tags["rnnlab.outcome"] == "completed"
    assert "baseline/cross_entropy" in out


def test_train_help_lists_config_groups_their_options_and_flags(run_cli, tmp_path) -> None:
    rc, out, err = run_cli(tmp_path, "train", "--help")
    assert rc == 0, err
    groups = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    for group, options in {
        "model": ["gru", "irnn", "lstm", "rnn"],
        "task": ["adding", "copy", "digits"],
        "hardware": ["cpu", "gpu", "multi_gpu"],
        "tracking": ["local", "server"],
        "experiment": ["adding_long", "copy_gru", "irnn_digits"],
    }.items():
        assert all(o in groups[group] for o in options), groups.get(group)
    assert "--cfg" in out
    assert list(tmp_path.iterdir()) == []


def test_train_cfg_prints_the_composed_config_and_creates_nothing(run_cli, tmp_path) -> None:
    rc, out, err = run_cli(tmp_path, "train", "--cfg", "model=gru", "train.clip.threshold=0.5")
    assert rc == 0, err
    cfg = yaml.safe_load(out)
    assert set(cfg) >= {"model", "task", "train", "hardware", "tracking"}
    assert cfg["model"]["cell"] == "gru"
    assert cfg["train"]["clip"]["threshold"] == 0.5
    assert cfg["tracking"]["uri"] == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert list(tmp_path.iterdir()) == []


def test_nan_loss_ends_the_run_as_failed_with_outcome_diverged(
    run_cli, mlflow_store, tiny, tmp_path
) -> None:
    # A task whose targets are NaN (tests/integration/diverging_task.py): diverges at step 0.
    rc, out, err = run_cli(
        tmp_path,
        "train",
        *tiny,
        "+task._target_=diverging_task.NanTargetAdding",
        "train.max_epochs=3",
        env={"PYTHONPATH": str(INTEGRATION_DIR)},
    )
    # A divergence is a result, recorded in MLflow, not a crash of the command.
    assert rc == 0, err
    assert "outcome: diverged" in out
    assert "diverged at step 0" in out
    run = mlflow_store.only_run()
    assert run.info.status == "FAILED"
    assert run.data.tags["rnnlab.outcome"] == "diverged"
    assert run.data.tags["rnnlab.divergence.step"] == "0"
    assert run.data.tags["rnnlab.divergence.loss"] == "nan"
    assert "rnnlab.error" not in run.data.tags
    assert mlflow_store.history(run.info.run_id, "train/loss") == []  # stopped at once
    assert "Traceback" not in err


def test_a_real_numeric_blowup_is_caught_as_divergence_with_its_last_finite_values(
    tiny, tmp_path
) -> None:
    from rnnlab.composition import absolute_paths, compose
    from rnnlab.config import validate_run_config
    from rnnlab.training.fit import fit

    overrides = [*tiny, "model=irnn", "train.optimizer=sgd", "train.lr=50", "train.clip.mode=none"]
    cfg = validate_run_config(absolute_paths(compose("train", overrides), base=tmp_path))
    result = fit(cfg, checkpoint_dir=tmp_path / "ckpt")
    assert result.outcome == "diverged"
    div = result.divergence
    assert div["step"] >= 1
    assert isinstance(div["last_finite_loss"], float)
    assert isinstance(div["last_grad_norm"], float)  # the step that blew it up
    assert "test/loss" not in result.metrics  # a diverged run is not tested


def test_a_store_named_by_absolute_path_keeps_the_artifacts_beside_it(
    run_cli, open_store, tiny, tmp_path
) -> None:
    """Run from one folder into a store in another: the artifacts go where the store is,
    and the folder the command ran in stays empty (MLflow alone would fill ./mlruns)."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    result = run_cli(
        here,
        "train",
        *tiny,
        "train.max_epochs=1",
        f"tracking.uri=sqlite:///{elsewhere / 'mlflow.db'}",
    )
    assert result.rc == 0, result.stderr
    assert list(here.iterdir()) == []
    run = open_store(elsewhere).only_run()
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_relative_to(elsewhere / "mlruns")
    assert (artifacts / "config.yaml").is_file()
