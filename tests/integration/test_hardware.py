"""Hardware settings that CI can prove without a GPU: bf16 autocast on CPU, and data parallel
over two CPU processes (gloo) that still records exactly one MLflow run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.strategies import DDPStrategy

from rnnlab.composition import absolute_paths, compose
from rnnlab.config import RunConfig, validate_run_config
from rnnlab.training.fit import build_trainer, fit


def _config(tmp_path: Path, *overrides: str) -> RunConfig:
    raw = absolute_paths(compose("train", list(overrides)), base=tmp_path)
    return validate_run_config(raw)


class _HeadDtypes(Callback):
    """Records the dtype of the output layer's result at every training step."""

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()

    def on_train_start(self, trainer, pl_module) -> None:
        pl_module.net.head.register_forward_hook(lambda m, i, out: self.dtypes.add(out.dtype))


def test_bf16_mixed_trains_on_cpu_under_autocast(tiny, tmp_path: Path) -> None:
    cfg = _config(
        tmp_path, *tiny, "hardware.precision=bf16-mixed", "train.max_epochs=2", "model=gru"
    )
    probe = _HeadDtypes()
    result = fit(cfg, extra_callbacks=[probe], checkpoint_dir=tmp_path / "ckpt")
    assert result.outcome == "completed"
    assert probe.dtypes == {torch.bfloat16}  # autocast really ran the layers in bf16
    assert len(result.history) == 2
    losses = [epoch["train/loss"] for epoch in result.history]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[1] < losses[0]
    assert torch.isfinite(torch.tensor(result.metrics["test/loss"]))


def test_fp32_runs_the_layers_in_fp32(tiny, tmp_path: Path) -> None:
    cfg = _config(tmp_path, *tiny, "train.max_epochs=1", "train.limit_batches=2")
    probe = _HeadDtypes()
    assert fit(cfg, extra_callbacks=[probe], run_test=False).outcome == "completed"
    assert probe.dtypes == {torch.float32}


@pytest.mark.parametrize("strategy", ["auto", "ddp_spawn"])
def test_several_devices_use_spawned_ranks_never_plain_ddp(strategy: str, tmp_path: Path) -> None:
    # Plain `ddp` re-executes the command line per rank: under `rnnlab train` that was a second
    # complete run, with its own MLflow run, from the same command.
    cfg = _config(tmp_path, "hardware.devices=2", f"hardware.strategy={strategy}")
    trainer = build_trainer(cfg, [], None, tmp_path, progress=False)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert trainer.strategy._start_method == "spawn"
    assert trainer.strategy.process_group_backend == "gloo"
    assert trainer.num_devices == 2


@pytest.mark.slow
def test_ddp_spawn_on_two_cpu_processes_logs_exactly_one_run_from_rank_zero(
    run_cli, mlflow_store, tiny, tmp_path: Path
) -> None:
    rc, out, err = run_cli(
        tmp_path,
        "train",
        *tiny,
        "hardware.devices=2",
        "hardware.strategy=ddp_spawn",
        "train.max_epochs=2",
    )
    assert rc == 0, err
    assert "GLOBAL_RANK: 1" in err  # two ranks really ran
    assert out.count("mlflow run:") == 1
    run = mlflow_store.only_run()
    assert run.info.status == "FINISHED"
    assert run.data.tags["rnnlab.outcome"] == "completed"
    run_id = run.info.run_id
    # One value per epoch: a second rank logging too would double every step.
    for key in ("train/loss", "val/loss", "train/grad_norm"):
        assert [step for step, _ in mlflow_store.history(run_id, key)] == [0, 1], key
    assert [step for step, _ in mlflow_store.history(run_id, "test/loss")] == [2]
    assert "checkpoints" in mlflow_store.artifacts(run_id)
