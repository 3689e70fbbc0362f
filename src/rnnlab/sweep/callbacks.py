"""Driver-side Tune callback: records each trial's outcome in MLflow and prints compact progress.

Only the driver knows *why* a trial ended (the scheduler pruned it, the budget ran out,
it crashed for good), so it, not the worker, closes each child run with its outcome.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from ray.tune import Callback

from rnnlab.sweep.tracking import find_trial_run
from rnnlab.tracking import runs


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


class SweepTracker(Callback):
    def __init__(
        self,
        *,
        experiment_id: str,
        sweep_name: str,
        metric: str,
        mode: str,
        total: int,
        max_epochs: int,
        time_budget: float | None = None,
        progress: bool = True,
        label: str = "search",
    ) -> None:
        # Only picklable state: Tune pickles callbacks with the experiment for restore.
        self.experiment_id = experiment_id
        self.sweep_name = sweep_name
        self.metric = metric
        self.mode = mode
        self.total = total
        self.max_epochs = max_epochs
        self.progress = progress
        self.label = label
        self.time_budget = time_budget
        self.run_ids: dict[str, str] = {}
        self.outcomes: dict[str, str] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.best: float | None = None
        self.start = time.monotonic()

    @property
    def uri(self) -> str:
        # The live endpoint (a restored sweep runs a new loopback server on a new port).
        from rnnlab.sweep.runner import ACTIVE_ENDPOINTS

        return ACTIVE_ENDPOINTS[self.sweep_name]

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.start = time.monotonic()

    @property
    def budget_exhausted(self) -> bool:
        return (
            self.time_budget is not None and time.monotonic() - self.start >= self.time_budget - 1.0
        )

    # --- helpers -----------------------------------------------------------------------
    def _say(self, text: str) -> None:
        if self.progress:
            elapsed = time.monotonic() - self.start
            done = len(self.outcomes)
            print(f"[{elapsed:6.0f}s {done:>3}/{self.total}] {text}", file=sys.stdout, flush=True)

    def _params(self, trial: Any) -> str:
        cfg = trial.config or {}
        parts = []
        for key, value in cfg.items():
            if key.startswith("_"):
                continue
            short = key.split(".", 1)[-1] if key.startswith("group.") else key.split(".")[-1]
            parts.append(f"{short}={_short(value)}")
        return " ".join(parts)

    def _run_id(self, trial: Any) -> str | None:
        rid = self.run_ids.get(trial.trial_id)
        if rid is None:
            rid = find_trial_run(self.uri, self.experiment_id, self.sweep_name, trial.trial_id)
            if rid:
                self.run_ids[trial.trial_id] = rid
        return rid

    def _close(self, trial: Any, outcome: str, error: str | None = None) -> None:
        self.outcomes[trial.trial_id] = outcome
        rid = self._run_id(trial)
        if rid is None:
            return
        handle = runs.RunHandle(self.uri, rid, self.experiment_id)
        try:
            if error:
                runs.set_tags(handle, {"rnnlab.error": error[:5000]})
            runs.end_run(handle, outcome)
        except Exception as exc:  # tracking trouble must not take the sweep down
            print(
                f"warning: could not record trial {trial.trial_id} in MLflow: {exc}",
                file=sys.stderr,
            )

    # --- Tune hooks --------------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(f"start     {trial.trial_id}  {self._params(trial)}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._say(f"retry     {trial.trial_id}  (crashed; continuing from its last checkpoint)")

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        self.last[trial.trial_id] = result
        if "rnnlab_run_id" in result:
            self.run_ids[trial.trial_id] = result["rnnlab_run_id"]
        if result.get("rnnlab_done"):
            return
        value = result.get(self.metric)
        if isinstance(value, float) and math.isfinite(value):
            better = self.best is None or (
                value < self.best if self.mode == "min" else value > self.best
            )
            if better:
                self.best = value
        epoch = int(result.get("epoch", result.get("training_iteration", 0)))
        best = f" (best {self.best:.4g})" if self.best is not None else ""
        self._say(
            f"epoch     {trial.trial_id}  {epoch + 1}/{self.max_epochs} {self.metric}={_short(value)}{best}"
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        last = self.last.get(trial.trial_id) or trial.last_result or {}
        if last.get("rnnlab_done"):
            outcome = str(last.get("rnnlab_outcome", "completed"))
        elif self.budget_exhausted:
            outcome = "budget"
        else:
            outcome = "pruned"
        self._close(trial, outcome)
        value = last.get(self.metric)
        shown = "-" if outcome == "diverged" else _short(value)
        self._say(f"{outcome:<10}{trial.trial_id}  {self.metric}={shown}  {self._params(trial)}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = ""
        if getattr(trial, "error_file", None):
            try:
                with open(trial.error_file) as fh:
                    lines = [ln for ln in fh.read().splitlines() if ln.strip()]
                    error = lines[-1] if lines else ""
            except OSError:
                pass
        self._close(trial, "failed", error or "trial failed")
        self._say(f"failed    {trial.trial_id}  {error[:160]}")
