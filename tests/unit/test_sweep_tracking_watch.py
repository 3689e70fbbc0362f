"""The sweep driver waits for its tracking server beside the search, and stops it on failure."""

from __future__ import annotations

import signal
import threading
import time

import pytest

from rnnlab.config import ConfigError
from rnnlab.sweep.runner import _tracking_ready


def _failing() -> str:
    raise ConfigError("MLflow server for http://127.0.0.1:1 exited with code 3")


def _wait_for(event: threading.Event, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not event.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)  # handlers run in the main thread, between bytecodes
    return event.is_set()


def test_a_healthy_server_neither_fails_nor_signals() -> None:
    with _tracking_ready(lambda: "http://127.0.0.1:1") as watch:
        assert watch.wait() is False
    assert watch.error is None


def test_a_failed_server_stops_the_search_once_tune_listens() -> None:
    got = threading.Event()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        with _tracking_ready(_failing) as watch:
            assert watch.wait() is True
            time.sleep(0.5)  # Tune's handler is not installed yet: nothing may be sent
            assert not got.is_set()
            signal.signal(signal.SIGUSR1, lambda *_: got.set())  # what Tuner.fit installs
            assert _wait_for(got)
        assert isinstance(watch.error, ConfigError) and "exited with code 3" in str(watch.error)
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_failure_after_the_search_ended_sends_nothing() -> None:
    def late() -> str:
        time.sleep(0.3)
        raise ConfigError("late")

    previous = signal.getsignal(signal.SIGUSR1)
    sent = threading.Event()
    try:
        signal.signal(signal.SIGUSR1, lambda *_: sent.set())
        with _tracking_ready(late) as watch:
            pass  # the search ended before the server failed
        time.sleep(0.5)
        assert not sent.is_set()
        assert isinstance(watch.error, ConfigError)
    finally:
        signal.signal(signal.SIGUSR1, previous)


@pytest.mark.parametrize("handler", [signal.SIG_DFL, signal.SIG_IGN])
def test_no_signal_while_the_default_or_ignore_handler_is_in_place(handler) -> None:
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        signal.signal(signal.SIGUSR1, handler)
        with _tracking_ready(_failing) as watch:
            assert watch.wait() is True
            time.sleep(0.5)  # SIG_DFL would end this process if a signal were sent
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_handler_left_by_an_earlier_search_does_not_swallow_the_stop() -> None:
    """Tune never removes its SIGUSR1 handler; the next search's own handler must be signalled."""
    old_run, new_run = threading.Event(), threading.Event()
    previous = signal.getsignal(signal.SIGUSR1)
    try:
        signal.signal(signal.SIGUSR1, lambda *_: old_run.set())  # left by an earlier search
        with _tracking_ready(_failing) as watch:
            assert watch.wait() is True
            assert _wait_for(old_run)
            signal.signal(signal.SIGUSR1, lambda *_: new_run.set())  # this search's Tuner.fit
            assert _wait_for(new_run)
    finally:
        signal.signal(signal.SIGUSR1, previous)
