"""`rnnlab eval RUN_ID [key=value ...]`: score a tracked run's checkpoint again, into the same run.

The run is the unit a user keeps (docs/design-notes.md): its `config.yaml` and checkpoint
are read back from MLflow, plain dotted overrides change what is evaluated (the split, a
longer `task.seq_len`, another data file), and the metrics go back to the same run under
`eval/<split>/[<variant>/]<metric>`, next to what training logged.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from rnnlab.config import ConfigError, RunConfig, one_line_error, validate_run_config

CHECKPOINT_DIR = "checkpoints"
CONFIG_FILE = "config.yaml"
# Overrides of these keys change the data evaluated, so they label the metric keys.
_DATA_KEYS = ("task.", "train.seed")


class EvalSettings(BaseModel):
    """The `eval.*` keys: what to score. Everything else overrides the run's own config."""

    model_config = ConfigDict(extra="forbid")

    split: Literal["train", "val", "test"] = "test"
    checkpoint: Literal["best", "last"] = "best"  # best falls back to last if it is missing


@dataclass
class Evaluation:
    """One evaluation: what was scored, with which weights, and the metrics as logged."""

    run_id: str
    run_name: str
    split: str
    checkpoint: str
    variant: str  # "" when the data is the one the run was tested on
    metrics: dict[str, float] = field(default_factory=dict)  # eval/... keys, as logged
    baselines: dict[str, float] = field(default_factory=dict)
    step: int = 0
    overrides: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# --- overrides --------------------------------------------------------------------------------
def _parse(overrides: list[str]) -> tuple[EvalSettings, list[tuple[str, Any, bool]]]:
    """Split `eval.*` settings from config overrides (key, YAML-parsed value, may_add)."""
    from rnnlab.composition import GROUPS

    settings: dict[str, Any] = {}
    items: list[tuple[str, Any, bool]] = []
    for item in overrides:
        key, sep, text = item.partition("=")
        add = key.startswith("+")
        key = key.lstrip("+")
        if not sep or not key:
            raise ConfigError(f"{item!r}: overrides are key=value, e.g. task.seq_len=200")
        if key in (*GROUPS, "experiment"):
            raise ConfigError(
                f"{item}: a trained run keeps its {key}; `rnnlab eval` takes plain dotted keys "
                "(e.g. task.seq_len=200 or eval.split=val)"
            )
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            value = text
        if key.startswith("eval."):
            settings[key[len("eval.") :]] = value
        else:
            items.append((key, value, add))
    try:
        return EvalSettings.model_validate(settings), items
    except ValidationError as err:
        raise one_line_error(err, settings, prefix="eval.", schema=EvalSettings) from None


def apply_overrides(raw: dict[str, Any], items: list[tuple[str, Any, bool]]) -> dict[str, Any]:
    """The run's config dict with each dotted key set; an unknown key is refused by name."""
    out = copy.deepcopy(raw)
    for key, value, add in items:
        node: Any = out
        parts = key.split(".")
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if not isinstance(node, dict) or (part not in node and not add):
                where = ".".join(parts[:depth]) or "the config"
                known = ", ".join(sorted(node)) if isinstance(node, dict) else "none"
                raise ConfigError(
                    f"{key}: the run's config has no key {part!r} in {where} (keys: {known}); "
                    f"add one with +{key}=VALUE"
                )
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    return out


def variant_of(items: list[tuple[str, Any, bool]], original: dict[str, Any]) -> str:
    """A metric-key label for overrides that change the evaluated data ('' if none does).

    `task.seq_len=200` → `len200`, a data file → `file-<stem>`, any other task key or the
    seed → `<key>-<value>`; other keys (device, batch size) change nothing scored.
    """
    parts = []
    for key, value, _ in items:
        if not key.startswith(_DATA_KEYS):
            continue
        if _get(original, key) == value:
            continue
        leaf = key.split(".")[-1]
        if leaf == "seq_len":
            parts.append(f"len{value}")
        elif leaf.endswith("path") and isinstance(value, str):
            parts.append(f"file-{Path(value).stem}")
        else:
            parts.append(f"{leaf}-{value}")
    return "/".join(re.sub(r"[^A-Za-z0-9_.-]+", "_", p) for p in parts)


def _get(raw: dict[str, Any], key: str) -> Any:
    node: Any = raw
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


# --- the store ----------------------------------------------------------------------------------
def _open_store(tracking_uri: str) -> tuple[str, Any]:
    """The resolved URI and a client, refusing a missing SQLite file instead of creating one."""
    from rnnlab.tracking import runs
    from rnnlab.tracking.probe import probe_tracking_uri, resolve_tracking_uri
    from rnnlab.tracking.sqlite_uri import sqlite_path

    uri = resolve_tracking_uri(tracking_uri)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise ConfigError(
            f"no MLflow store at {uri}; run `rnnlab eval` where the run was trained, "
            "or pass --uri for its store"
        )
    probe_tracking_uri(uri)
    return uri, runs.client(uri)


def _find_run(client: Any, run_id: str, uri: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise
        raise ConfigError(
            f"no run {run_id!r} in {uri}; a run from another store needs --uri "
            "(e.g. --uri http://mlflow:5000); `rnnlab ui` lists the runs here"
        ) from None
    if run.info.lifecycle_stage == "deleted":
        raise ConfigError(f"run {run_id} in {uri} is deleted; restore it in the MLflow UI first")
    return run


def _checkpoint_path(client: Any, run: Any, wanted: str) -> str:
    run_id = run.info.run_id
    try:
        found = {Path(a.path).name for a in client.list_artifacts(run_id, CHECKPOINT_DIR)}
    except Exception as exc:  # an artifact store this machine cannot reach
        raise ConfigError(
            f"cannot read the artifacts of run {run_id} at {run.info.artifact_uri} "
            f"({type(exc).__name__}); is it from another store? pass --uri for it"
        ) from None
    order = ["best.ckpt", "last.ckpt"] if wanted == "best" else ["last.ckpt"]
    for name in order:
        if name in found:
            return f"{CHECKPOINT_DIR}/{name}"
    if not found:
        state = " (it is still running)" if run.info.status == "RUNNING" else ""
        raise ConfigError(
            f"run {run_id} has no checkpoint to evaluate{state}: it was trained with "
            "train.keep_checkpoints=none or tracking.log_checkpoints=false, or ended before "
            "its first validation"
        )
    raise ConfigError(
        f"eval.checkpoint={wanted}: run {run_id} has no {wanted}.ckpt; it has "
        f"{', '.join(sorted(found))} (train.keep_checkpoints decides which are kept)"
    )


def _download(client: Any, run_id: str, path: str, folder: Path) -> Path | None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line per file
    try:
        return Path(client.download_artifacts(run_id, path, str(folder)))
    except Exception:
        return None


# --- evaluation -----------------------------------------------------------------------------------
def _for_this_machine(cfg: RunConfig, notes: list[str]) -> RunConfig:
    """One device of the run's kind; the CPU when the run trained on a GPU this machine lacks."""
    import torch

    hw = cfg.hardware.model_copy(update={"devices": 1, "strategy": "auto"})
    if hw.accelerator == "gpu" and not torch.cuda.is_available():
        precision = "32" if hw.precision == "16-mixed" else hw.precision
        hw = hw.model_copy(update={"accelerator": "cpu", "precision": precision})
        notes.append("trained on a GPU; evaluating on the CPU (no GPU here)")
    return cfg.model_copy(update={"hardware": hw})


def _score(cfg: RunConfig, checkpoint: Path, split: str, limit: Any, workdir: Path):
    """Test metrics of the checkpoint's weights on one split, and the task's spec."""
    import pytorch_lightning as pl
    import torch

    from rnnlab.models import build_model
    from rnnlab.training.fit import build_datamodule, configure_torch, quiet_lightning
    from rnnlab.training.lm_module import LanguageModelModule
    from rnnlab.training.module import SequenceModule

    quiet_lightning()
    configure_torch(cfg)
    pl.seed_everything(cfg.train.seed, workers=True, verbose=False)
    datamodule = build_datamodule(cfg)
    spec = datamodule.spec
    net = build_model(cfg.model, spec)
    module = (LanguageModelModule if spec.stateful else SequenceModule)(cfg, spec, net)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        first = lines[1] if len(lines) > 1 else lines[0]  # line 0 only names the module
        raise ConfigError(
            f"the checkpoint does not fit the model its config builds ({first}); "
            "an override may have changed the model's shape"
        ) from None
    datamodule.prepare_data()
    datamodule.setup("test" if split == "test" else "fit")
    loader = getattr(datamodule, f"{split}_dataloader")()
    hw = cfg.hardware
    trainer = pl.Trainer(
        accelerator=hw.accelerator,
        devices=1,
        precision="32-true" if hw.precision in ("32", "32-true") else hw.precision,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_test_batches=limit,
        default_root_dir=str(workdir),
    )
    trainer.test(module, dataloaders=loader, verbose=False)
    metrics = {
        k[len("test/") :]: float(v)
        for k, v in trainer.callback_metrics.items()
        if k.startswith("test/")
    }
    return metrics, spec


def evaluate(run_id: str, overrides: list[str], tracking_uri: str) -> Evaluation:
    """Evaluate a run's checkpoint and log the metrics to the same run; see `evaluate_run`."""
    from rnnlab.registry import check_task_inputs
    from rnnlab.tracking import runs

    settings, items = _parse(list(overrides))
    uri, client = _open_store(tracking_uri)
    run = _find_run(client, run_id, uri)
    artifact = _checkpoint_path(client, run, settings.checkpoint)
    with tempfile.TemporaryDirectory(prefix="rnnlab-eval-") as tmp:
        folder = Path(tmp)
        checkpoint = _download(client, run_id, artifact, folder)
        if checkpoint is None:
            raise ConfigError(
                f"cannot download {artifact} of run {run_id} from {run.info.artifact_uri}; "
                "is the run from another store? pass --uri for it"
            )
        config_file = _download(client, run_id, CONFIG_FILE, folder)
        if config_file is not None:
            raw = yaml.safe_load(config_file.read_text())
        else:  # every rnnlab checkpoint also carries its config (save_hyperparameters)
            import torch

            ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
            raw = (ckpt.get("hyper_parameters") or {}).get("config")
            if not isinstance(raw, dict):
                raise ConfigError(f"run {run_id} has no {CONFIG_FILE}; was it made by rnnlab?")
        original = raw
        raw = apply_overrides(original, items)
        tracking = raw.get("tracking")
        if isinstance(tracking, dict):
            tracking["uri"] = uri  # a sweep trial logged through a loopback server long gone
        cfg = validate_run_config(raw)
        check_task_inputs(cfg.task)  # before torch is imported, to refuse a bad input at once
        notes: list[str] = []
        cfg = _for_this_machine(cfg, notes)
        # The whole split unless asked otherwise: training's train.limit_batches was for speed.
        given = {key for key, _, _ in items}
        limit = cfg.train.limit_batches if "train.limit_batches" in given else None
        scores, spec = _score(cfg, checkpoint, settings.split, limit, folder)

    variant = variant_of(items, original)
    prefix = f"eval/{settings.split}/" + (f"{variant}/" if variant else "")
    seq_len = getattr(cfg.task, "seq_len", None)
    step = seq_len if isinstance(seq_len, int) and not isinstance(seq_len, bool) else 0
    result = Evaluation(
        run_id=run_id,
        run_name=run.info.run_name or "",
        split=settings.split,
        checkpoint=Path(artifact).name,
        variant=variant,
        metrics={prefix + k: v for k, v in sorted(scores.items())},
        baselines=dict(spec.baselines),
        step=step,
        overrides=list(overrides),
        notes=notes,
    )
    handle = runs.RunHandle(uri, run_id, run.info.experiment_id)
    runs.log_metrics(handle, result.metrics, step=step)
    record = {
        "split": result.split,
        "checkpoint": result.checkpoint,
        "overrides": result.overrides,
        "metrics": result.metrics,
        "step": step,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    name = (settings.split + (f"-{variant.replace('/', '-')}" if variant else "")) + ".json"
    runs.log_text(handle, json.dumps(record, indent=2), f"eval/{name}")
    return result


def evaluate_run(
    run_id: str, overrides: list[str], tracking_uri: str, *, stream: Any = None
) -> dict[str, float]:
    """Evaluate run `run_id`'s best checkpoint (else its last) and log to the same run.

    `overrides` are plain dotted `key=value` on the run's logged config (values parsed as
    YAML), plus `eval.split=train|val|test` and `eval.checkpoint=best|last`. The metrics are
    printed to `stream` (stdout by default) and returned as logged: `eval/test/mse`, or
    `eval/test/len200/mse` after `task.seq_len=200`. A user error raises ConfigError (one line).
    """
    result = evaluate(run_id, overrides, tracking_uri)
    print_evaluation(result, stream or sys.stdout)
    return dict(result.metrics)


def print_evaluation(result: Evaluation, stream: Any) -> None:
    p = lambda s="": print(s, file=stream)  # noqa: E731
    for note in result.notes:
        p(f"note: {note}")
    what = f"{result.split} split" + (f" ({result.variant})" if result.variant else "")
    p(f"run {result.run_id} ({result.run_name}): {result.checkpoint} on the {what}")
    width = max([len(k) for k in result.metrics] + [24])
    for key, value in result.metrics.items():
        p(f"  {key:<{width}} {value:.6g}")
    for key, value in result.baselines.items():
        p(f"  {'baseline/' + key:<{width}} {value:.6g}")
    p(f"logged to run {result.run_id} (step {result.step})")


def eval_command(args: argparse.Namespace) -> int:
    """`rnnlab eval RUN_ID [key=value ...] [--uri URI]` (args.run_id, args.overrides, args.uri)."""
    evaluate_run(args.run_id, list(args.overrides), args.uri)
    return 0
