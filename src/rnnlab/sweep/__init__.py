"""Sweeps: Optuna search on Ray Tune, each trial the same tracked `fit` as `rnnlab train`."""
