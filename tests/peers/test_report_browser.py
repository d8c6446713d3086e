"""The rendered report in a real browser: headless Chromium (Debian package ``chromium``).

Driven over the DevTools protocol with the small WebSocket client below (no extra dependency):
the page is loaded from a file:// URL and the test asserts that the browser logged no console
error, that the verdict is rendered visibly, that the SVG plots are in the DOM with a real size,
and (with a second, plain ``--screenshot`` run) that a screenshot is a non-empty PNG.

Chromium is required, not optional: if it is missing the test fails and says what to install (CI
installs it in ``.ci/run``). The last tests open the report, ``rackval compare`` and ``rackval trend``
documents in a 1,400 x 900 viewport, as a reviewer's screen, and print where their screenshots are.
Every wait is bounded; the browser runs in its own session and is killed by its PID's process
group in the finaliser, so no renderer or zygote outlives the test.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from rackval.harness.measure import Limit, Measurement
from rackval.harness.report.html import render_report
from rackval.harness.store import ActionRecord, DeviceRecord, RunInfo, SqliteStore, open_store

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
TIMEOUT_S = 30.0
T0 = 1_700_000_000.0
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
)  # fmt: skip
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _chromium() -> str:
    for candidate in CHROMIUM_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    pytest.fail("headless Chromium is needed for this test and was not found: apt-get install chromium")


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop the browser we started: SIGTERM to its PID lets it shut its children down itself;
    then SIGKILL to its process group (its own session) catches any child that lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):  # the whole group may be gone already
        os.killpg(proc.pid, signal.SIGKILL)


# ---- a minimal WebSocket client (RFC 6455: client text frames, masked; server frames unmasked) ----
class WebSocket:
    def __init__(self, url: str, timeout: float) -> None:
        parts = urlsplit(url)
        assert parts.hostname == "127.0.0.1", url  # DevTools on loopback only
        self.sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {parts.path} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = self._until(b"\r\n\r\n").decode("latin-1")
        assert head.startswith("HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        assert f"sec-websocket-accept: {accept.lower()}" in head.lower(), head

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("DevTools closed the WebSocket")
        self.buf += chunk

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send(self, text: str) -> None:
        payload = text.encode()
        n = len(payload)
        header = bytes([0x81])
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv(self) -> str:
        message = b""
        while True:
            b0, b1 = self._take(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._take(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._take(8))
            payload = self._take(n)
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the WebSocket")
            if opcode in (0x9, 0xA):  # ping/pong: not used by DevTools, ignore
                continue
            message += payload
            if b0 & 0x80:
                return message.decode()

    def close(self) -> None:
        self.sock.close()


class DevTools:
    """Commands and events of one page target; events are kept in arrival order."""

    def __init__(self, ws_url: str) -> None:
        self.ws = WebSocket(ws_url, TIMEOUT_S)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv())
            if message.get("id") == self.next_id:
                assert "error" not in message, (method, message["error"])
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(f"DevTools {method}: no answer in {TIMEOUT_S} s")

    def wait_event(self, method: str, since: int) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            for event in self.events[since:]:
                if event["method"] == method:
                    return event
            message = json.loads(self.ws.recv())
            if "method" in message:
                self.events.append(message)
        raise TimeoutError(f"DevTools: no {method} in {TIMEOUT_S} s")

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def load(self, url: str) -> list[str]:
        """Navigate and wait for the load event; return the console/log errors it caused."""
        since = len(self.events)
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", since)
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        self.call("Runtime.evaluate", expression="1")  # drain events queued before this point
        return _errors(self.events[since:])

    def close(self) -> None:
        self.ws.close()


def _errors(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for event in events:
        params = event.get("params", {})
        if event["method"] == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append(f"console.{params['type']}: {params.get('args')}")
        elif event["method"] == "Runtime.exceptionThrown":
            out.append(f"exception: {params.get('exceptionDetails')}")
        elif event["method"] == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            out.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    exe = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    log = (profile.parent / "chromium.log").open("wb")
    proc = subprocess.Popen(
        [exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1",
         "--remote-debugging-port=0", "--window-size=1280,1600", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    tools: DevTools | None = None
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + TIMEOUT_S
        while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
            assert proc.poll() is None, f"chromium exited with {proc.returncode}; see {log.name}"
            assert time.monotonic() < deadline, f"chromium did not open DevTools in {TIMEOUT_S} s"
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=TIMEOUT_S) as resp:
            pages = [t for t in json.load(resp) if t.get("type") == "page"]
        assert pages, "chromium has no page target"
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            tools.call(f"{domain}.enable")
        yield tools
    finally:
        if tools is not None:
            tools.close()
        _kill_group(proc)
        log.close()


def _write_run(store: SqliteStore) -> None:
    store.start_run(RunInfo(run_id="run-b", started_at=T0, rack_name="rack-<b>7</b>", git_sha="cafe1234",
                            rack_file="racks/r.yaml", spec_file="specs/s.yaml"))  # fmt: skip
    store.record_device("run-b", DeviceRecord("node-1", "node", "linux", "10.0.0.2", "Acme", "GX", "SN1", "1.0"))
    store.record_firmware("run-b", "node-1", "BMC", "1.2.3", recorded_at=T0)
    tid = store.start_test("run-b", "test_plans/test_t.py::test_soak", T0 + 1)
    for i in range(5):
        m = Measurement.judged("gpu_temp", 70.0 + 4 * i, "degC", Limit(high=85.0, unit="degC"), device="node-1",
                               channel="node-1.gpu0.temp", clock_s=float(i * 20))  # fmt: skip
        store.record_measurement("run-b", tid, m)
    store.finish_test(tid, "failed", 1.0, "AssertionError: <script>alert('x')</script>")
    store.record_action("run-b", ActionRecord("node-1", "set fan override", "release fan override", test_id=tid))
    store.record_samples(
        "run-b",
        [(f"node-1.gpu{g}.temp", "node-1", float(t), 60.0 + g + t * 0.3, "degC") for t in range(100) for g in range(4)]
        + [(f"node-1.psu{p}.power", "node-1", float(t), 900.0 + 50 * p + (t % 9), "W") for t in range(100)
           for p in range(2)],
    )  # fmt: skip
    store.finish_run("run-b", "failed", T0 + 100)


def test_report_renders_in_chromium(browser: DevTools, tmp_path: Path) -> None:
    store = open_store(tmp_path / "r.sqlite")
    try:
        _write_run(store)
        report = render_report(store, "run-b", tmp_path / "out")
    finally:
        store.close()

    errors = browser.load(report.resolve().as_uri())
    assert errors == []
    assert browser.evaluate("document.title").startswith("FAIL")
    verdict = browser.evaluate(
        "(() => { const e = document.getElementById('verdict'); const r = e.getBoundingClientRect();"
        " const s = getComputedStyle(e); return {text: e.innerText, w: r.width, h: r.height,"
        " visible: s.visibility === 'visible' && s.display !== 'none' && parseFloat(s.opacity) > 0}; })()"
    )
    assert verdict["text"] == "FAIL" and verdict["visible"] and verdict["w"] > 20 and verdict["h"] > 10
    banner = browser.evaluate("document.getElementById('undo-banner').innerText")
    assert "RACK MAY BE LEFT CHANGED" in banner and "NEVER RAN" in banner
    svgs = browser.evaluate(
        "[...document.querySelectorAll('svg.plot')].map(s => { const r = s.getBoundingClientRect();"
        " return {label: s.getAttribute('aria-label'), w: r.width, h: r.height,"
        " shapes: s.querySelectorAll('path, use, polyline').length}; })"
    )
    labels = [s["label"] for s in svgs]
    assert "node/gpu#.temp: 4 channels" in labels and "node/psu#.power: 2 channels" in labels  # one figure per kind
    assert "time series of gpu_temp" in labels
    assert all(s["w"] > 300 and s["h"] > 100 and s["shapes"] > 10 for s in svgs), svgs
    assert browser.evaluate("document.scripts.length") == 0  # the hostile message stayed text
    assert "<script>alert('x')</script>" in browser.evaluate("document.querySelector('section.diag pre').innerText")
    dom = browser.evaluate("document.documentElement.outerHTML")
    assert 'id="verdict">FAIL<' in dom and "rack-&lt;b&gt;7&lt;/b&gt;" in dom


def test_each_verdict_badge_has_its_own_colour_in_chromium(browser: DevTools, tmp_path: Path) -> None:
    """PASS WITH MARGINALS is not drawn as PASS: the four badges differ in their computed colour."""
    store = open_store(tmp_path / "r.sqlite")
    watts = Limit(high=1200.0, unit="W")
    paths = {}
    try:
        for run_id, value, outcome, finished in (
            ("run-pass", 900.0, "passed", True),
            ("run-marg", 1190.0, "passed", True),  # 10 W from its limit: marginal
            ("run-fail", 1250.0, "failed", True),
            ("run-live", 900.0, "passed", False),  # never finished
        ):
            store.start_run(RunInfo(run_id=run_id, started_at=T0, rack_name="rack-7"))
            tid = store.start_test(run_id, "test_plans/test_t.py::test_idle", T0 + 1)
            store.record_measurement(run_id, tid, Measurement.judged("idle power", value, "W", watts, device="node-1"))
            store.finish_test(tid, outcome, 1.0)
            if finished:
                store.finish_run(run_id, "pass" if outcome == "passed" else "fail", T0 + 10)
            paths[run_id] = render_report(store, run_id, tmp_path / run_id)
    finally:
        store.close()
    seen = {}
    for run_id, path in paths.items():
        assert browser.load(path.resolve().as_uri()) == []
        seen[run_id] = browser.evaluate(
            "(() => { const e = document.getElementById('verdict'); const s = getComputedStyle(e);"
            " const r = e.getBoundingClientRect(); return {text: e.innerText, bg: s.backgroundColor, w: r.width,"
            " h: r.height}; })()"
        )
    assert [seen[r]["text"] for r in paths] == ["PASS", "PASS WITH MARGINALS", "FAIL", "INCOMPLETE"]
    assert seen["run-marg"]["bg"] == "rgb(230, 149, 0)" and seen["run-pass"]["bg"] == "rgb(46, 125, 50)"
    assert len({v["bg"] for v in seen.values()}) == 4, seen
    assert seen["run-marg"]["h"] < 2.2 * seen["run-pass"]["h"], seen  # the long word keeps a badge's shape


def test_console_error_capture_is_not_vacuous(browser: DevTools, tmp_path: Path) -> None:
    page = tmp_path / "broken.html"
    page.write_text("<!DOCTYPE html><title>x</title><img src='missing.png'><script>console.error('boom')</script>")
    errors = browser.load(page.resolve().as_uri())
    assert any("boom" in e for e in errors), errors
    assert any("missing.png" in e or "ERR_FILE_NOT_FOUND" in e for e in errors), errors


def test_screenshot_is_a_png(tmp_path: Path) -> None:
    store = open_store(tmp_path / "r.sqlite")
    try:
        _write_run(store)
        report = render_report(store, "run-b", tmp_path / "out")
    finally:
        store.close()
    shot = tmp_path / "report.png"
    proc = subprocess.Popen(
        [_chromium(), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1280,1600", report.resolve().as_uri()],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        pytest.fail(f"chromium --screenshot did not finish in {TIMEOUT_S} s")
    finally:
        _kill_group(proc)
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack("!II", data[16:24])
    assert (width, height) == (1280, 1600)
    assert len(data) > 20_000  # a blank page compresses to a few kB; the report does not


# ---- the documents a person reads, at 1,400 px: report, compare, trend -------------------------------
SCREEN = (1400, 900)
FIRST_SCREEN = """(ids => ids.map(sel => { const e = document.querySelector(sel);
  if (!e) return {sel, found: false};
  const r = e.getBoundingClientRect(); const s = getComputedStyle(e);
  return {sel, found: true, top: r.top, left: r.left, right: r.right, w: r.width, h: r.height,
          visible: s.visibility === 'visible' && s.display !== 'none' && parseFloat(s.opacity) > 0}; }))"""


def _screenshot(browser: DevTools, url: str, path: Path) -> list[str]:
    """Load ``url`` in a 1,400 x 900 viewport, save what the first screen shows as ``path`` (PNG),
    and return the console errors the page caused."""
    browser.call("Emulation.setDeviceMetricsOverride", width=SCREEN[0], height=SCREEN[1], deviceScaleFactor=1,
                 mobile=False)  # fmt: skip
    errors = browser.load(url)
    shot = browser.call("Page.captureScreenshot", format="png")
    path.write_bytes(base64.b64decode(shot["data"]))
    return errors


def _in_first_screen(browser: DevTools, selectors: list[str]) -> dict[str, dict[str, Any]]:
    boxes = {b["sel"]: b for b in browser.evaluate(f"{FIRST_SCREEN}({json.dumps(selectors)})")}
    for sel, box in boxes.items():
        assert box["found"], f"{sel} is not on the page"
        assert box["visible"] and box["w"] > 0 and box["h"] > 0, box
        assert 0 <= box["top"] < SCREEN[1] and box["right"] <= SCREEN[0], f"{sel} is not in the first screen: {box}"
    return boxes


def _documents(tmp_path: Path) -> dict[str, Path]:
    """Report, compare and trend of the analysis test data (rev-A against rev-B, with a failure)."""
    from rackval.harness.analysis import trend as trend_mod
    from rackval.harness.analysis.compare.comparison import compare
    from rackval.harness.analysis.compare.render import write_outputs
    from tests.support.analysis_data import build

    store = open_store(tmp_path / "results.sqlite")
    try:
        build(store)
        report = render_report(store, "b1", tmp_path / "report")
        write_outputs(compare(store, "rev-A", "rev-B"), tmp_path / "compare", ["html"])
        trend_mod.write_outputs(trend_mod.trend(store, "PWR-1"), tmp_path / "trend")
    finally:
        store.close()
    return {"report": report, "compare": tmp_path / "compare" / "compare.html",
            "trend": tmp_path / "trend" / "trend.html"}  # fmt: skip


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return _documents(tmp_path_factory.mktemp("documents"))


FIRST_SCREEN_ELEMENTS = {
    "report": ["#verdict", "nav#toc", "#summary h2", "#test-summary"],
    "compare": ["h1", "#verdict"],
    "trend": ["h1", "svg"],
}


@pytest.mark.parametrize("name", list(FIRST_SCREEN_ELEMENTS))
def test_documents_at_1400_px(
    name: str, documents: dict[str, Path], browser: DevTools, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a reviewer sees first on a 1,400 x 900 screen: no console error and the key elements
    visible without scrolling (report: verdict, table of contents, summary; compare: the verdict;
    trend: the plot). The screenshot's path is printed."""
    shot = tmp_path / f"{name}-1400x900.png"
    assert _screenshot(browser, documents[name].resolve().as_uri(), shot) == []
    _in_first_screen(browser, FIRST_SCREEN_ELEMENTS[name])
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack("!II", data[16:24]) == SCREEN
    assert len(data) > 20_000, f"{name}: the first screen is nearly blank"
    with capsys.disabled():
        print(f"\n  screenshot of {name} at 1400x900: {shot}")


def _fits(browser: DevTools, path: Path) -> int:
    browser.call("Emulation.setDeviceMetricsOverride", width=SCREEN[0], height=SCREEN[1], deviceScaleFactor=1,
                 mobile=False)  # fmt: skip
    assert browser.load(path.resolve().as_uri()) == []
    return int(browser.evaluate("document.documentElement.scrollWidth"))


def test_report_fits_1400_px_with_the_outcome_visible(documents: dict[str, Path], browser: DevTools) -> None:
    assert _fits(browser, documents["report"]) <= SCREEN[0]
    browser.evaluate("document.getElementById('all-measurements').scrollIntoView()")
    table = browser.evaluate(
        "(() => { const t = document.getElementById('measurements'); const r = t.getBoundingClientRect();"
        " const o = t.querySelector('tbody .badge').getBoundingClientRect();"
        " return {right: r.right, badge_left: o.left, badge_right: o.right, badge_w: o.width}; })()"
    )
    assert table["right"] <= SCREEN[0] and table["badge_left"] >= 0 and table["badge_right"] <= SCREEN[0], table
    assert table["badge_w"] > 20, table


def test_trend_fits_1400_px(documents: dict[str, Path], browser: DevTools) -> None:
    assert _fits(browser, documents["trend"]) <= SCREEN[0]


def test_compare_fits_1400_px(documents: dict[str, Path], browser: DevTools) -> None:
    assert _fits(browser, documents["compare"]) <= SCREEN[0]
