"""Training on one CUDA GPU: fp16 and bf16 autocast, clipping on unscaled gradients, tracking.

CI has no GPU, so these skip there; benchmarks/gpu_check.sh runs them on a GPU machine (results
in docs/benchmarks.md). They need neither Ray nor the `rnnlab` command, only the package.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pytorch_lightning.callbacks import Callback

from rnnlab.composition import absolute_paths, compose
from rnnlab.config import RunConfig, validate_run_config
from rnnlab.training.fit import fit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _config(tmp_path: Path, *overrides: str) -> RunConfig:
    raw = absolute_paths(compose("train", ["hardware=gpu", *overrides]), base=tmp_path)
    return validate_run_config(raw)


class _HeadProbe(Callback):
    """Records the device and dtype of the output layer's result at every training step."""

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()
        self.devices: set[str] = set()

    def on_train_start(self, trainer, pl_module) -> None:
        def hook(module, inputs, out) -> None:
            self.dtypes.add(out.dtype)
            self.devices.add(out.device.type)

        pl_module.net.head.register_forward_hook(hook)


def _losses(history: list[dict[str, float]], key: str) -> list[float]:
    return [epoch[key] for epoch in history]


@pytest.mark.parametrize(
    ("precision", "dtype"), [("16-mixed", torch.float16), ("bf16-mixed", torch.bfloat16)]
)
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_mixed_precision_trains_on_the_gpu(
    tiny, tmp_path: Path, cell: str, precision: str, dtype: torch.dtype
) -> None:
    cfg = _config(
        tmp_path, *tiny, f"model={cell}", f"hardware.precision={precision}", "train.max_epochs=3"
    )
    probe = _HeadProbe()
    result = fit(cfg, extra_callbacks=[probe], checkpoint_dir=tmp_path / "ckpt")
    assert result.outcome == "completed"
    assert probe.devices == {"cuda"}
    assert probe.dtypes == {dtype}  # autocast really ran the layers in half precision
    losses = _losses(result.history, "train/loss")
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert torch.isfinite(torch.tensor(result.metrics["test/loss"]))


def test_fp16_clips_and_reports_unscaled_gradient_norms(tiny, tmp_path: Path) -> None:
    # Under 16-mixed the loss is multiplied by GradScaler's scale (65536 at the start). Clipping
    # and the logged norm must see the gradients after unscaling: the same norms fp32 sees on
    # the same seed, not norms four orders of magnitude larger.
    common = (*tiny, "train.max_epochs=1", "train.clip.mode=norm", "train.clip.threshold=1.0")
    fp16 = fit(_config(tmp_path / "fp16", *common, "hardware.precision=16-mixed"), run_test=False)
    fp32 = fit(_config(tmp_path / "fp32", *common, "hardware.precision=32"), run_test=False)
    norm16, norm32 = fp16.history[0]["train/grad_norm"], fp32.history[0]["train/grad_norm"]
    assert 0.5 < norm16 / norm32 < 2.0, (norm16, norm32)
    assert 0.0 <= fp16.history[0]["train/clip_fraction"] <= 1.0


def test_a_tracked_gpu_run_records_its_precision_and_outcome(tiny, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from rnnlab.cli import load_run_config
    from rnnlab.training.tracked import train_tracked

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = load_run_config(
        "train", [*tiny, "hardware=gpu", "train.max_epochs=2", f"tracking.uri={uri}"]
    )
    result = train_tracked(cfg)
    assert result.outcome == "completed"
    run = MlflowClient(tracking_uri=uri).get_run(result.run.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["hardware.accelerator"] == "gpu"
    assert run.data.params["hardware.precision"] == "16-mixed"
    assert run.data.tags["rnnlab.outcome"] == "completed"
    assert "val/loss" in run.data.metrics
