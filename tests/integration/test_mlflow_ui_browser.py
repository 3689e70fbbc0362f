"""Compare a sweep's runs in the MLflow UI, in a real headless Chromium.

A tracking server on loopback, a small `rnnlab sweep tracking=server` against it, then the
experiment page and the compare-runs page, driven over the DevTools protocol (a stdlib
websocket: no client library needed): the child runs must show, with their init, dropout
and clipping params side by side. Screenshots land in test-artifacts/ (git-ignored).

The server's own defences (a foreign Host header is refused; an artifact path with `../`
is rejected) are proven in tests/integration/test_tracking_server.py
(`test_foreign_host_header_is_refused`, `test_artifact_path_with_parent_segments_is_rejected`,
`test_run_artifact_endpoints_reject_parent_segments`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration._sweeps import TINY_PROBLEM

from rnnlab.tracking.server import start_server, stop_server

pytestmark = pytest.mark.slow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SWEEP = "ui-compare"
COMPARED = (
    "model.init.recurrent",
    "model.init.input",
    "model.dropout",
    "train.clip.mode",
    "train.clip.threshold",
)
TINY_SWEEP = (
    *TINY_PROBLEM,
    "sweep.trials=3",
    "sweep.max_concurrent=2",
    "sweep.scheduler=none",
    "sweep.final_seeds=0",
    "sweep.progress=false",
)
# MLflow 3's assistant panel takes a third of the page: close it for the screenshots.
CLOSE_ASSISTANT = (
    "document.querySelector('button[data-component-id=\"mlflow.assistant.chat_panel.close\"]')"
    "?.click()"
)
# The compare page's params table scrolls inside its own panel: bring the `sampled.*` rows
# (what the sweep searched: init, dropout, clipping) to its top; the panel's bottom edge.
SCROLL_TO_SAMPLED_PARAMS = """(() => {
  const row = [...document.querySelectorAll('table.mlflow-compare-run-table tr')]
    .find(tr => tr.firstElementChild?.innerText.trim().startsWith('sampled.'));
  let box = row?.parentElement;
  while (box && !(box.scrollHeight > box.clientHeight + 1
                  && /(auto|scroll)/.test(getComputedStyle(box).overflowY))) {
    box = box.parentElement;
  }
  if (!box) return null;
  box.scrollTop += row.getBoundingClientRect().top - box.getBoundingClientRect().top;
  return box.getBoundingClientRect().bottom + 40;
})()"""
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--window-size=1600,1000",
)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- just enough of a websocket client and of the DevTools protocol -------------------------
class DevTools:
    """One page of a browser, over the DevTools protocol (RFC 6455 client, text frames only)."""

    def __init__(self, ws_url: str, timeout: float = 60.0) -> None:
        url = urllib.parse.urlsplit(ws_url)
        self.sock = socket.create_connection((url.hostname, url.port), timeout=timeout)
        self.stream = self.sock.makefile("rb")
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {url.path} HTTP/1.1\r\nHost: {url.netloc}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = self.stream.readline()
        assert b" 101 " in status, status
        while self.stream.readline() not in (b"\r\n", b""):
            pass
        self.next_id = 0

    def _send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", 0x81, 0x80 | n)
        elif n < 1 << 16:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read(self, n: int) -> bytes:
        data = self.stream.read(n)
        if len(data) < n:
            raise ConnectionError("DevTools connection closed")
        return data

    def _receive(self) -> str:
        message = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            opcode = first & 0x0F
            if opcode == 8:
                raise ConnectionError("DevTools connection closed by the browser")
            if opcode in (0, 1, 2):
                message += payload
                if first & 0x80:
                    return message.decode()

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self._send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            answer = json.loads(self._receive())
            if answer.get("id") == self.next_id:  # anything else is an event: not needed
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 90.0) -> None:
        """Poll a JS expression until it is truthy (the UI renders after its API calls)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.evaluate(f"Boolean({expression})"):
                return
            time.sleep(0.5)
        text = self.evaluate("document.body ? document.body.innerText : ''") or ""
        raise AssertionError(f"page never satisfied {expression!r}; it shows: {text[:1500]}")

    def open(self, url: str, ready: str, timeout: float = 90.0) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for(ready, timeout)

    def screenshot(self, path: Path, height: int | None = None) -> None:
        """The viewport, first grown to `height` px (MLflow scrolls inside a panel)."""
        if height:
            self.call(
                "Emulation.setDeviceMetricsOverride",
                width=1600,
                height=min(height, 6000),
                deviceScaleFactor=1,
                mobile=False,
            )
        time.sleep(1.5)  # relayout, charts and fonts
        shot = self.call("Page.captureScreenshot", format="png")
        if height:
            self.call("Emulation.clearDeviceMetricsOverride")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@contextlib.contextmanager
def _browser(executable: str) -> Iterator[DevTools]:
    """Headless Chromium with DevTools on a loopback port; its whole process group ends after."""
    profile = Path(tempfile.mkdtemp(prefix="rnnlab-chromium-"))
    process = subprocess.Popen(
        [
            executable,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    page = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert process.poll() is None, f"chromium exited with {process.returncode}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        target = next(t for t in targets if t["type"] == "page")
        page = DevTools(target["webSocketDebuggerUrl"])
        yield page
    finally:
        if page is not None:
            page.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


# --- the test -----------------------------------------------------------------------------
@pytest.fixture
def chromium() -> str:
    """Skip before anything starts where there is no browser (.ci/run installs Debian's)."""
    path = _chromium()
    if path is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    return path


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    process = start_server(
        f"sqlite:///{tmp_path / 'mlflow.db'}",
        tmp_path / "mlartifacts",
        port=port,
        log_path=tmp_path / "mlflow-server.log",
        timeout=120,  # a loaded 2-core CI machine
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_server(process)


def _text_has(*needles: str) -> str:
    return " && ".join(f"document.body.innerText.includes({json.dumps(n)})" for n in needles)


def test_sweep_children_compare_side_by_side_in_the_mlflow_ui(
    chromium, tmp_path, run_cli, tracking_server
):
    from mlflow.tracking import MlflowClient

    t0 = time.monotonic()
    rc, out, err = run_cli(
        tmp_path,
        "sweep",
        "tracking=server",
        f"tracking.uri={tracking_server}",
        f"sweep.name={SWEEP}",
        *TINY_SWEEP,
    )
    assert rc == 0, out[-3000:] + err[-3000:]
    swept = time.monotonic()

    client = MlflowClient(tracking_uri=tracking_server)
    experiment_id = client.get_experiment_by_name("rnnlab").experiment_id
    runs = client.search_runs([experiment_id], f"tags.`rnnlab.sweep` = '{SWEEP}'")
    parent = next(r for r in runs if r.data.tags.get("rnnlab.role") == "sweep")
    children = [r for r in runs if r.data.tags.get("rnnlab.role") == "search"]
    assert len(children) == 3
    names = [c.info.run_name for c in children]
    ui = tracking_server

    with _browser(chromium) as page:
        # The experiment's runs: the sweep's parent row, expanded to show its children.
        parent_link = f"document.querySelector('a[href$=\"/runs/{parent.info.run_id}\"]')"
        page.open(f"{ui}/#/experiments/{experiment_id}/runs", parent_link)
        page.evaluate(CLOSE_ASSISTANT)
        assert page.evaluate(_text_has(SWEEP))
        page.evaluate(f"{parent_link}.closest('[role=gridcell]').querySelector('button').click()")
        page.wait_for(_text_has(*names))
        page.screenshot(ARTIFACTS / "mlflow-experiment-runs.png")

        # The compare page: one column per child run, one row per param.
        query = urllib.parse.urlencode(
            {
                "runs": json.dumps([c.info.run_id for c in children]),
                "experiments": json.dumps([experiment_id]),
            }
        )
        page.open(f"{ui}/#/compare-runs?{query}", _text_has(*names, *COMPARED))
        page.evaluate(CLOSE_ASSISTANT)
        rows = page.evaluate(
            "[...document.querySelectorAll('table.mlflow-compare-run-table tr')]"
            ".map(tr => [...tr.children].map(cell => cell.innerText.trim()))"
        )
        # Screenshot: plots folded away, the params panel scrolled to the searched rows.
        page.evaluate(
            "[...document.querySelectorAll('[role=button][aria-expanded=true]')]"
            ".filter(h => h.innerText.trim() === 'Visualizations').forEach(h => h.click())"
        )
        page.wait_for("!document.body.innerText.includes('Parallel Coordinates Plot')")
        bottom = page.evaluate(SCROLL_TO_SAMPLED_PARAMS)
        page.screenshot(ARTIFACTS / "mlflow-compare-runs.png", height=max(1000, int(bottom or 0)))

    table = {row[0].rstrip(":"): row[1:] for row in rows if row}
    columns = table["Run ID"]
    assert sorted(columns) == sorted(c.info.run_id for c in children)
    by_id = {c.info.run_id: c for c in children}
    assert table["Run Name"] == [by_id[rid].info.run_name for rid in columns]
    for key in COMPARED:
        shown = table[key]
        logged = [by_id[rid].data.params.get(key, "") for rid in columns]
        assert shown == logged, (key, shown, logged)
    sampled = [key for key in table if key.startswith("sampled.")]
    assert {
        "sampled.model.init.recurrent",
        "sampled.model.dropout",
        "sampled.train.clip.mode",
    } <= set(sampled)
    for key in sampled:  # what the sweep searched, as each trial drew it
        assert table[key] == [by_id[rid].data.params.get(key, "") for rid in columns], key
    # the searched values differ between runs, so the page is a real comparison
    assert any(len(set(table[key])) > 1 for key in COMPARED)
    for shot in ("mlflow-experiment-runs.png", "mlflow-compare-runs.png"):
        assert (ARTIFACTS / shot).stat().st_size > 20_000  # a rendered page, not a blank one
    print(f"sweep {swept - t0:.0f} s, browser {time.monotonic() - swept:.0f} s")
