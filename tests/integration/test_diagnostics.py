"""Diagnostics on real training runs: labels on the adding problem, clipping, MLflow, the report.

Labels are stated *at initialization*: the gradient-flow sample at step 0, taken before any
update (`GradientFlow.initial_label`, tag `rnnlab.gradient_flow.initial`). Training moves
them: an LSTM that learns to forget (adding problem, Adam lr 1e-2) turns vanishing within
an epoch, which is a finding, not a bug.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from rnnlab.cli import load_run_config
from rnnlab.diagnostics import build_diagnostics
from rnnlab.diagnostics.clipping import ClippingTelemetry
from rnnlab.diagnostics.gradient_flow import GradientFlow
from rnnlab.training.fit import build_callbacks, build_datamodule, fit

REPO_ROOT = Path(__file__).resolve().parents[2]
ADDING_T100 = [
    "task=adding",
    "task.seq_len=100",
    "task.train_size=64",
    "task.val_size=32",
    "task.test_size=32",
    "model.hidden_size=32",
    "train.batch_size=32",
    "train.max_epochs=1",
    "train.keep_checkpoints=none",
]


def _cfg(*overrides: str, base: list[str] = ADDING_T100):
    return load_run_config("train", [*base, *overrides])


def _flow(*overrides: str) -> tuple[GradientFlow, object]:
    gf = GradientFlow(every_n_steps=1)
    result = fit(_cfg(*overrides), extra_callbacks=[gf], run_test=False)
    return gf, result


def test_tanh_rnn_with_small_recurrent_init_is_vanishing_at_initialization():
    gf, _ = _flow("model=rnn", "model.init.recurrent_scale=0.1")
    assert gf.initial_label == -1
    assert gf.epochs[0]["gradflow/label"] == -1  # and over the whole first epoch
    assert gf.epochs[0]["gradflow/l0/log10_first_over_last"] < -10


def test_lstm_with_forget_gate_bias_one_is_not_vanishing_at_initialization():
    gf, _ = _flow(
        "model=lstm", "model.init.forget_bias=1.0", "model.hidden_size=64", "train.limit_batches=1"
    )
    assert gf.initial_label == 0  # stable, measured before any update
    assert gf.samples[0].step == 0


def test_irnn_with_too_large_learning_rate_and_no_clipping_is_exploding_or_diverged():
    gf, result = _flow(
        "model=irnn", "train.lr=0.05", "train.clip.mode=none", "train.limit_batches=2"
    )
    labels = [e["gradflow/label"] for e in gf.epochs]
    assert result.outcome == "diverged" or 1.0 in labels, (result.outcome, labels)


def test_clip_fraction_is_zero_without_clipping_and_positive_with_a_tiny_threshold():
    fractions = {}
    for clip in (["train.clip.mode=none"], ["train.clip.mode=norm", "train.clip.threshold=1e-4"]):
        cfg = _cfg(*clip, "task.seq_len=20", "train.limit_batches=2", "diagnostics.clipping=true")
        telemetry = ClippingTelemetry(cfg.train.clip.threshold, cfg.train.clip.mode)
        fit(cfg, extra_callbacks=[telemetry], run_test=False)
        epoch = telemetry.epochs[0]
        fractions[cfg.train.clip.mode] = epoch["clip/fraction"]
        if cfg.train.clip.mode == "norm":
            assert epoch["clip/norm_after_max"] <= 1e-4 * 1.001
            assert epoch["clip/norm_before_p50"] > 1e-4
        else:
            assert epoch["clip/norm_after_p50"] == epoch["clip/norm_before_p50"]
    assert fractions == {"none": 0.0, "norm": 1.0}


def test_train_has_no_diagnostics_and_registers_no_hook_while_sweeps_switch_them_on(tmp_path):
    train_cfg = load_run_config("train", [])
    assert build_diagnostics(train_cfg) == []
    spec = build_datamodule(train_cfg).spec
    names = {type(cb).__name__ for cb in build_callbacks(train_cfg, spec, tmp_path)}
    assert names == {"RelocatableModelCheckpoint", "EarlyStopping"}
    sweep_cfg = load_run_config("sweep", [])
    names = [type(cb).__name__ for cb in build_diagnostics(sweep_cfg)]
    assert names == [
        "GradientFlow",
        "ClippingTelemetry",
        "RecurrentSpectra",
        "DivergenceProbe",
        "EpochLog",  # one MLflow write per epoch for all of them
        "DiagnosticPlots",
    ]


def test_gradient_flow_hooks_exist_only_on_sampled_steps():
    import pytorch_lightning as pl

    seen: list[tuple[int, int]] = []

    class Spy(pl.Callback):  # runs after GradientFlow's on_train_batch_start
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            hooks = sum(len(layer._forward_pre_hooks) for layer in pl_module.net.layers)
            seen.append((trainer.global_step, hooks))

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            assert all(not layer._forward_pre_hooks for layer in pl_module.net.layers)

    cfg = _cfg("model=lstm", "model.num_layers=2", "task.seq_len=10", "train.max_epochs=2")
    fit(cfg, extra_callbacks=[GradientFlow(every_n_steps=3), Spy()], run_test=False)
    # 2 batches per epoch: sampled at steps 0 and 3, and 2 (first step of epoch 1)
    assert seen == [(0, 2), (1, 0), (2, 2), (3, 2)]
    seen.clear()
    fit(cfg, extra_callbacks=[Spy()], run_test=False)  # diagnostics off: nothing, ever
    assert all(hooks == 0 for _, hooks in seen)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diag-store")
    return f"sqlite:///{folder / 'mlflow.db'}"


ALL_ON = [
    "diagnostics.gradient_flow=true",
    "diagnostics.every_n_steps=2",
    "diagnostics.clipping=true",
    "diagnostics.spectra=true",
    "diagnostics.divergence=true",
    "diagnostics.plots=true",
]


def test_tracked_run_stores_diagnostics_as_metrics_params_tags_and_plots(store):
    from mlflow.tracking import MlflowClient

    from rnnlab.training.tracked import train_tracked

    cfg = _cfg("model=gru", "task.seq_len=20", f"tracking.uri={store}", *ALL_ON)
    result = train_tracked(cfg)
    client = MlflowClient(store)
    run = client.get_run(result.run.run_id)
    metrics, params, tags = run.data.metrics, run.data.params, run.data.tags
    for key in (
        "gradflow/l0/log10_first_over_last",
        "gradflow/l0/log10_growth_per_step",
        "gradflow/l0/label",
        "gradflow/l0/weight_grad_norm",
        "clip/fraction",
        "clip/norm_before_p90",
        "clip/norm_after_max",
        "spectra/l0/update/spectral_radius",
    ):
        assert key in metrics, key
    assert float(params["init.spectral_radius.l0.update"]) == pytest.approx(1.0, rel=1e-3)
    assert tags["rnnlab.gradient_flow.initial"] in ("vanishing", "stable", "exploding")
    plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert plots == {"plots/gradient_flow.png", "plots/clipping.png", "plots/loss.png"}


def test_diverged_run_names_the_part_whose_gradient_blew_up_first(store):
    from mlflow.tracking import MlflowClient

    from rnnlab.training.tracked import train_tracked

    # A tanh RNN with SGD at lr 3 and no clipping: the head runs away within a few steps.
    cfg = _cfg(
        "model=rnn",
        "model.hidden_size=16",
        "task.seq_len=30",
        "task.train_size=256",
        "train.optimizer=sgd",
        "train.lr=3.0",
        "train.clip.mode=none",
        "train.max_epochs=3",
        f"tracking.uri={store}",
        *ALL_ON,
    )
    result = train_tracked(cfg)
    assert result.outcome == "diverged"
    client = MlflowClient(store)
    tags = client.get_run(result.run.run_id).data.tags
    step = int(tags["rnnlab.divergence.step"])
    assert tags["rnnlab.divergence.blowup_layer"] in ("l0", "head")
    assert int(tags["rnnlab.divergence.blowup_step"]) < step
    assert "rnnlab.divergence.grad_norm.head" in tags
    local = client.download_artifacts(result.run.run_id, "diagnostics/divergence.json")
    window = json.loads(Path(local).read_text())["window"]
    assert set(window["grad_norms"]) == {"l0", "head"} and window["steps"][-1] == step - 1
    # a diverged run is plotted too
    plots = {a.path for a in client.list_artifacts(result.run.run_id, "plots")}
    assert "plots/gradient_flow.png" in plots


# --- the sweep report, in a real browser ------------------------------------------------------
TINY_SWEEP = [
    "task=adding",
    "task.seq_len=20",
    "task.train_size=96",
    "task.val_size=32",
    "task.test_size=32",
    "model.hidden_size=8",
    "train.batch_size=32",
    "train.max_epochs=3",
    "sweep.trials=4",
    "sweep.final_seeds=0",
    # ASHA from epoch 1: trials it stops must keep their plots (drawn before each rung).
    "sweep.scheduler=asha",
    "sweep.grace_period=1",
    "sweep.progress=false",
    "sweep.name=tiny",
    "diagnostics.every_n_steps=2",
]

IMAGE_CHECK = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src);
  const out = document.createElement("pre");
  out.id = "rnnlab-image-check";
  out.textContent = JSON.stringify({total: images.length, broken: broken});
  document.body.appendChild(out);
});
</script>
"""


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def _chromium_args(browser: str) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def ray_local():
    from rnnlab.sweep.ray_runtime import use_loopback

    use_loopback()
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield ray
    ray.shutdown()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_report_of_a_tiny_sweep_opens_in_chromium_with_every_image_loaded(
    tmp_path, monkeypatch, ray_local
):
    from mlflow.tracking import MlflowClient

    from rnnlab.report import load_sweep_report, summary_text, write_report
    from rnnlab.sweep.plan import build_plan
    from rnnlab.sweep.runner import preflight, run_sweep

    monkeypatch.chdir(tmp_path)
    plan = build_plan(TINY_SWEEP)
    preflight(plan)
    run_sweep(plan)

    report = load_sweep_report(plan.folder)
    assert len(report.trials) == 4
    index = write_report(plan.folder, top=3, report=report)
    assert index == plan.folder / "report" / "index.html"
    page = index.read_text()
    for section in ("Outcomes", "Hyper-parameter importance", "Recurrent init × clipping"):
        assert section in page
    images = re.findall(r'<img src="([^"]+)"', page)
    assert "init_clip_heatmap.png" in images and "parallel_coordinates.png" in images
    assert "gradient_flow_best.png" in images
    assert all(not src.startswith(("/", "file:", "http")) for src in images)  # relative
    assert "sweep tiny (finished)" in summary_text(report)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    stored = {a.path for a in client.list_artifacts(report.record.parent_run_id, "report")}
    assert "report/index.html" in stored
    children = client.search_runs(
        [client.get_experiment_by_name("rnnlab").experiment_id],
        filter_string="tags.`rnnlab.role` = 'search'",
    )
    assert len(children) == 4
    for child in children:  # completed or pruned, every trial has its plots
        plots = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
        assert "plots/loss.png" in plots and "plots/gradient_flow.png" in plots, (
            child.data.tags.get("rnnlab.outcome"),
            plots,
        )
    # A running sweep has no optuna.db yet: the same trials come from MLflow alone.
    (plan.folder / "optuna.db").rename(tmp_path / "optuna.db.bak")
    live = load_sweep_report(plan.folder)
    assert sorted(t.run_id for t in live.valued()) == sorted(t.run_id for t in report.valued())
    (tmp_path / "optuna.db.bak").rename(plan.folder / "optuna.db")

    browser = _chromium()
    if browser is None:
        pytest.skip("chromium is not installed (CI installs Debian's chromium)")
    probe = index.with_name("image-check.html")  # beside the PNGs: same relative links
    probe.write_text(page.replace("</body>", IMAGE_CHECK + "</body>"))
    dom = subprocess.run(
        [*_chromium_args(browser), "--virtual-time-budget=10000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r'<pre id="rnnlab-image-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    check = json.loads(found.group(1))
    assert check["total"] == len(images) and check["broken"] == [], check
    artifacts = REPO_ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "sweep-report.png"
    subprocess.run(
        [
            *_chromium_args(browser),
            f"--screenshot={shot}",
            "--window-size=1280,4000",
            index.as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.exists() and shot.stat().st_size > 10_000
