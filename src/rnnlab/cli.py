"""`rnnlab`: the command line. Validates everything first, creates things only after.

Each subcommand is a small function; `main` maps user errors (ConfigError) to one line on
stderr and exit code 2, so a typo never leaves a half-written run behind.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from rnnlab.config import ConfigError

EXIT_USAGE = 2

_GROUP_HELP = {
    "model": "architecture, size, dropout, init",
    "task": "data, head, loss, metric",
    "hardware": "accelerator, devices, precision, per-trial resources",
    "tracking": "MLflow store",
    "diagnostics": "gradient flow, clipping, spectra, plots (why a run trained or failed)",
    "search": "a sweep's search space",
    "experiment": "named experiments from experiments/",
}


def _groups_help(command: str) -> str:
    from rnnlab.composition import GROUPS, group_options

    groups = [g for g in GROUPS if command == "sweep" or g != "search"] + ["experiment"]
    lines = [
        f"usage: rnnlab {command} [--cfg] [OVERRIDE ...]",
        "",
        "Overrides use Hydra's grammar: key=value, group=option, +new.key=value.",
        "  e.g. rnnlab train model=gru task=copy task.seq_len=50 train.clip.threshold=0.5",
        "",
        "Config groups (group=option):",
    ]
    for group in groups:
        opts = group_options(group)
        lines.append(f"  {group:<11} {', '.join(opts) or '(none)'}")
        lines.append(f"  {'':<11} {_GROUP_HELP[group]}")
    lines += [
        "",
        "Options:",
        "  --cfg       print the composed, validated config and exit",
        "  -h, --help  show this help",
    ]
    return "\n".join(lines)


def load_run_config(config_name: str, overrides: list[str], probe: bool = False):
    """Compose, resolve paths, validate: the RunConfig or a one-line ConfigError."""
    from rnnlab.composition import absolute_paths, compose
    from rnnlab.config import validate_run_config
    from rnnlab.tracking.probe import probe_composed

    raw = absolute_paths(compose(config_name, overrides))
    if probe:
        probe_composed(raw)  # seconds, before validation imports the task modules
    raw.pop("sweep", None)
    raw.pop("search", None)
    return validate_run_config(raw)


def check_ready(cfg) -> None:
    """What can fail before we create a run, beyond the config: the task's data files.

    The tracking store was probed when the config was composed (`probe_composed`).
    """
    from rnnlab.registry import check_task_inputs

    check_task_inputs(cfg.task)


def cmd_train(args: argparse.Namespace) -> int:
    import yaml

    if args.help:
        print(_groups_help("train"))
        return 0
    cfg = load_run_config("train", args.overrides, probe=not args.cfg)
    if args.cfg:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    check_ready(cfg)

    from rnnlab.training.tracked import train_tracked

    result = train_tracked(cfg, progress=sys.stderr.isatty())
    _print_run_summary(cfg, result)
    return 0


def _print_run_summary(cfg, result) -> None:
    fit = result.fit
    print(f"outcome: {fit.outcome}")
    if fit.divergence:
        print(
            f"diverged at step {fit.divergence['step']} (last finite loss {fit.divergence['last_finite_loss']})"
        )
    shown = {
        k: v
        for k, v in sorted(fit.metrics.items())
        if k.startswith(("val/", "test/", "train/loss"))
    }
    for key, value in shown.items():
        print(f"  {key:<24} {value:.6g}")
    if fit.spec and fit.spec.baselines:
        for key, value in fit.spec.baselines.items():
            print(f"  {'baseline/' + key:<24} {value:.6g}")
    if fit.by_length:
        print(f"by test length (trained at {fit.native_length}):")
        for length, row in fit.by_length.items():
            values = "  ".join(f"{k} {v:.4g}" for k, v in sorted(row.items()))
            print(f"  {length:>6}  {values}")
    print(
        f"mlflow run: {result.run.run_id} (experiment '{cfg.tracking.experiment}', {cfg.tracking.uri})"
    )
    if cfg.tracking.uri.startswith("sqlite:"):
        print("open the UI: rnnlab ui")


def cmd_sweep(args: argparse.Namespace) -> int:
    import yaml

    if args.help:
        print(_groups_help("sweep"))
        return 0
    from rnnlab.sweep.plan import build_plan
    from rnnlab.sweep.runner import preflight, print_summary, run_sweep, search_raw_of

    plan = build_plan(args.overrides, probe=not args.cfg)
    if args.cfg:
        shown = {
            **plan.base_cfg.to_dict(),
            "sweep": plan.settings.model_dump(mode="json"),
            "search": search_raw_of(plan),
        }
        print(yaml.safe_dump(shown, sort_keys=False), end="")
        return 0
    preflight(plan)
    if plan.settings.resume:
        _check_resume_overrides(plan, args.overrides)
    summary = run_sweep(plan)
    print_summary(summary)
    return 0 if summary.status == "finished" else 130


def _check_resume_overrides(plan, overrides: list[str]) -> None:
    """A resumed sweep keeps what it searches; only where it runs may change."""
    from rnnlab.sweep.runner import load_plan
    from rnnlab.sweep.state import STATE_FILE, SweepRecord

    # A driver may have died before saving its record; the plan is saved first.
    if (plan.folder / STATE_FILE).exists():
        original = set(SweepRecord.load(plan.folder).overrides)
    else:
        original = set(load_plan(plan.folder)[0].overrides)
    where = ("sweep.name=", "sweep.resume=", "hardware=", "hardware.", "tracking=", "tracking.")
    extra = [o for o in overrides if not o.startswith(where) and o not in original]
    if extra:
        raise ConfigError(
            f"a resumed sweep keeps the config it started with; drop {' '.join(extra)} "
            f"and run `rnnlab sweep sweep.name={plan.name} sweep.resume=true`"
        )


def cmd_sweeps(args: argparse.Namespace) -> int:
    from rnnlab.sweep.listing import list_command

    return list_command(args)


def cmd_eval(args: argparse.Namespace) -> int:
    from rnnlab.evaluation import eval_command

    return eval_command(args)


def cmd_report(args: argparse.Namespace) -> int:
    from rnnlab.report import report_command

    return report_command(args)


def cmd_server(args: argparse.Namespace) -> int:
    from rnnlab.tracking.server import resolve_backend_uri, serve

    return serve(
        resolve_backend_uri(args.backend_uri),
        args.artifacts,
        host=args.host,
        port=args.port,
        allowed_hosts=args.allowed_hosts,
        workers=args.workers,
    )


def cmd_ui(args: argparse.Namespace) -> int:
    from rnnlab.tracking.probe import resolve_tracking_uri
    from rnnlab.tracking.sqlite_uri import sqlite_path

    uri = resolve_tracking_uri(args.uri)
    db = sqlite_path(uri)
    if db is not None and not db.exists():
        raise ConfigError(
            f"no MLflow store at {uri}; run `rnnlab train` or `rnnlab sweep` here first, or pass --uri"
        )
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    print(f"MLflow UI on http://{args.host}:{args.port} (Ctrl-C to stop)")
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnlab",
        description="Train, sweep and compare recurrent networks (Lightning, Ray Tune + Optuna, MLflow).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in (
        ("train", "train one configuration"),
        ("sweep", "run an Optuna search on Ray Tune"),
    ):
        p = sub.add_parser(name, help=summary, add_help=False)
        p.add_argument("-h", "--help", action="store_true")
        p.add_argument("--cfg", action="store_true")
        p.add_argument("overrides", nargs="*")
    p = sub.add_parser("sweeps", help="list the sweeps in this directory (show NAME: top trials)")
    p.add_argument("action", nargs="?", choices=["list", "show", "stop"], default="list")
    p.add_argument("name", nargs="?")
    p.add_argument("--root", default="rnnlab-sweeps")
    p.add_argument("--top", type=int, default=10)
    p = sub.add_parser(
        "server", help="MLflow tracking server with a database backend, on 127.0.0.1"
    )
    p.add_argument(
        "--backend-uri", help="SQLAlchemy URI (default: $MLFLOW_BACKEND_STORE_URI or ./mlflow.db)"
    )
    p.add_argument(
        "--artifacts", default="mlartifacts", help="artifact root (folder or object-store URI)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument(
        "--allowed-hosts", help="comma-separated Host names clients use (required off loopback)"
    )
    p.add_argument("--workers", type=int)
    p = sub.add_parser(
        "eval", help="evaluate a tracked run's checkpoint (eval.split=, task.seq_len=)"
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--uri", default="sqlite:///mlflow.db", help="MLflow store holding the run")
    p = sub.add_parser(
        "report", help="HTML report of a sweep: importances, init x clipping, gradient flow"
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--root", default="rnnlab-sweeps")
    p.add_argument("--top", type=int, default=5)
    p = sub.add_parser("ui", help="MLflow UI on 127.0.0.1 for the default store")
    p.add_argument("--uri", default="sqlite:///mlflow.db")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    return parser


COMMANDS = {
    "train": cmd_train,
    "sweep": cmd_sweep,
    "sweeps": cmd_sweeps,
    "server": cmd_server,
    "eval": cmd_eval,
    "report": cmd_report,
    "ui": cmd_ui,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    if unknown:
        if hasattr(args, "overrides"):
            bad = [u for u in unknown if u.startswith("-")]
            if bad:
                print(
                    f"rnnlab {args.command}: error: unknown option {bad[0]}; see rnnlab {args.command} --help",
                    file=sys.stderr,
                )
                return EXIT_USAGE
            args.overrides = [*args.overrides, *unknown]
        else:
            print(
                f"rnnlab {args.command}: error: unexpected argument {unknown[0]}", file=sys.stderr
            )
            return EXIT_USAGE
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"rnnlab {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"rnnlab {args.command}: interrupted", file=sys.stderr)
        return 130


def console_main() -> int:
    """The `rnnlab` command: `main` with the collector paused for start-up and the heap
    frozen for exit (rnnlab/collector.py says why). Only for a process that ends with it."""
    from rnnlab.collector import freeze_for_exit, paused_for_startup

    with paused_for_startup():
        code = main()
        freeze_for_exit()
    return code


if __name__ == "__main__":
    sys.exit(console_main())
