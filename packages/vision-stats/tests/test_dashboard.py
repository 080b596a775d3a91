"""The dashboard in a real headless Chromium (Debian's `chromium`), fed by a live server.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: fds
3 and 4, NUL-separated JSON), so no websocket client is needed. The test fails on any
console error, uncaught exception or failed load (a CDN would be one: the CSP allows only
'self'), checks that the charts are drawn from the posted data, that the page refreshes
itself, and saves a screenshot under $VISION_TEST_ARTIFACTS (or /tmp/vision-test-artifacts).
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from .conftest import crossing, zone_event

pytestmark = pytest.mark.slow

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
]  # fmt: skip


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    message = (
        "!!! chromium is NOT INSTALLED: the dashboard browser test cannot run "
        "(apt-get install -y chromium; .ci/run does it) !!!"
    )
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)


def _above_4(fd: int) -> int:
    """The same pipe end on a descriptor >= 10, so that moving it to 3/4 clobbers nothing."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD, 10)
    os.close(fd)
    return high


class DevTools:
    """A minimal Chrome DevTools Protocol client over --remote-debugging-pipe."""

    def __init__(self, exe: str, profile: Path, log: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        to_chrome_r, from_chrome_w = _above_4(to_chrome_r), _above_4(from_chrome_w)
        with open(log, "wb") as err:
            # bash (dash knows no fd above 9) puts our pipe ends on fds 3 and 4, where Chromium expects them
            self.proc = subprocess.Popen(
                ["bash", "-c", f'exec "$0" "$@" 3<&{to_chrome_r} 4>&{from_chrome_w}', exe,
                 *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                pass_fds=(to_chrome_r, from_chrome_w), stdout=err, stderr=err,
            )  # fmt: skip
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("no answer from Chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium closed the pipe (exit {self.proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return dict(json.loads(raw))

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            answer = self._read_message(deadline)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return dict(answer.get("result", {}))
            self.events.append(answer)

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    tools = DevTools(_chromium(), tmp_path / "profile", tmp_path / "chromium.log")
    try:
        yield tools
    finally:
        tools.close()


def _problems(events: list[dict[str, Any]]) -> list[str]:
    found = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in {"error", "assert"}:
            found.append(f"console.{params['type']}: {params.get('args')}")
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            found.append(f"log: {params['entry'].get('text')} {params['entry'].get('url', '')}")
    return found


def _save_artifact(png: bytes, tmp_path: Path) -> Path:
    (tmp_path / "dashboard.png").write_bytes(png)
    target = Path(os.environ.get("VISION_TEST_ARTIFACTS") or "/tmp/vision-test-artifacts")
    target.mkdir(parents=True, exist_ok=True)
    (target / "vision-stats-dashboard.png").write_bytes(png)
    return target / "vision-stats-dashboard.png"


def _post(server, events, path: str = "events") -> None:
    r = httpx.post(
        f"{server.url}/api/v1/stats/{path}",
        content=msgspec.json.encode(events),
        headers={**server.headers, "Content-Type": "application/json"},
        timeout=10,
    )
    assert r.status_code == 200, r.text


def test_dashboard_renders_real_data_without_console_errors(
    live_server, browser: DevTools, make_event, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    classes = [{"car": 2, "person": 1}, {"person": 3}, {"bike": 1, "car": 1}, {"truck": 1}]
    events = [
        make_event(
            i,
            source=f"cam-{i % 3:02d}",
            ts=now - timedelta(seconds=20 * i + 30),
            latency=5.0 + (i * 7) % 40,
            counts=classes[i % 4],
        )
        for i in range(150)
    ]
    events.append(make_event(999, source="cam-silent", ts=now - timedelta(hours=2)))
    _post(live_server, events)
    minutes = [now - timedelta(minutes=m) for m in range(50, 0, -1)]
    track = (
        [crossing(minutes[i * 5], "in") for i in range(7)]  # gate: 7 cars in, 3 out, 1 person
        + [crossing(minutes[i * 5 + 2], "out") for i in range(3)]
        + [crossing(minutes[30], "in", cls="person")]
        + [zone_event(minutes[i], "enter", occupancy=i + 1) for i in range(3)]  # lobby: 3 in
        + [zone_event(minutes[20], "exit", dwell=1020.0, occupancy=2)]  # 1 out: 2 inside
        + [zone_event(minutes[10 + i], "enter", zone="dock", cls="truck", source="cam-02",
                      occupancy=i + 1) for i in range(2)]  # dock: 2 trucks inside
    )  # fmt: skip
    _post(live_server, track, "track-events")

    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
        browser.send(domain, session=session)
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 1500, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    browser.send("Page.navigate", {"url": live_server.url + "/"}, session=session)

    def evaluate(expression: str) -> Any:
        result = browser.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session
        )
        return result["result"].get("value")

    def wait_for(expression: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = evaluate(expression)
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(
            f"timed out waiting for {expression}; problems: {_problems(browser.events)}"
        )

    wait_for("document.body.dataset.state === 'ready'")
    page = evaluate(
        """({
        events: document.getElementById('ov-events').textContent,
        sources: document.getElementById('ov-sources').textContent,
        classBars: document.querySelectorAll('#chart-classes rect').length,
        classLabels: [...document.querySelectorAll('#chart-classes text')].map(t => t.textContent),
        detectionBars: document.querySelectorAll('#chart-detections rect').length,
        latencyLines: document.querySelectorAll('#chart-latency path').length,
        sourceRows: [...document.querySelectorAll('#sources tbody tr')].map(r => r.dataset.source),
        silent: document.querySelector('#sources tr[data-source="cam-silent"] .badge').textContent,
        recentRows: document.querySelectorAll('#recent tbody tr').length,
        error: document.getElementById('error').hidden,
        crossingTotals: [...document.querySelectorAll('#crossing-totals tbody tr')].map(r =>
            [r.dataset.line, r.dataset.class, r.querySelector('.in').textContent,
             r.querySelector('.out').textContent]),
        crossingBars: document.querySelectorAll('#chart-crossings rect').length,
        crossingLegend: [...document.querySelectorAll('#legend-crossings span')].map(s => s.textContent),
        zonesNow: [...document.querySelectorAll('#zones tbody tr')].map(r =>
            [r.dataset.zone, r.querySelector('.inside').textContent]),
        occupancyLines: [...document.querySelectorAll('#chart-occupancy path')].map(p =>
            [p.dataset.zone, p.querySelector('title').textContent]),
    })"""
    )
    assert page["events"] == "151"
    assert page["sources"] == "4"
    assert page["classBars"] == 4
    assert {"car", "person", "bike", "truck"} <= set(page["classLabels"])
    assert page["detectionBars"] > 10
    assert page["latencyLines"] == 2  # p50 and p95
    assert page["sourceRows"][0] == "cam-silent" and page["silent"] == "silent"
    assert page["recentRows"] == 20
    assert page["error"] is True
    assert page["crossingTotals"] == [["gate", "car", "7", "3"], ["gate", "person", "1", "0"]]
    assert page["crossingBars"] >= 10  # 11 crossings in 10 or 11 minutes of the last hour
    assert page["crossingLegend"] == ["gate / car", "gate / person"]
    assert page["zonesNow"] == [["lobby", "2"], ["dock", "2"]]
    assert page["occupancyLines"] == [
        ["lobby", "lobby: 2 now"],
        ["dock", "dock: 2 now"],
    ]  # peak first

    # it refreshes itself: new events show up without a reload
    _post(live_server, [make_event(i, source="cam-new", ts=now) for i in range(2000, 2010)])
    wait_for("document.getElementById('ov-events').textContent === '161'", timeout=15)
    _post(live_server, [crossing(now, "in"), zone_event(now, "exit", dwell=60.0)], "track-events")
    wait_for(
        "document.querySelector('#crossing-totals tr[data-class=\"car\"] .in').textContent === '8'"
        " && document.querySelector('#zones tr[data-zone=\"lobby\"] .inside').textContent === '1'",
        timeout=15,
    )

    shot = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)
    png = base64.b64decode(shot["data"])
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    saved = _save_artifact(png, tmp_path)
    assert saved.exists()
    assert _problems(browser.events) == []
