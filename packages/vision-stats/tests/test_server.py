"""End to end: `vision-stats serve` under uvicorn on loopback, driven over real HTTP."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

pytestmark = pytest.mark.slow
EXE = str(Path(sys.executable).parent / "vision-stats")


def _post(server, events, headers=None) -> httpx.Response:
    body = msgspec.json.encode(events)
    return httpx.post(
        f"{server.url}/api/v1/stats/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            **(server.headers if headers is None else headers),
        },
        timeout=10,
    )


def _raw_request(url: str, head: bytes, body_prefix: bytes) -> bytes:
    """Send headers and only the start of a body; read what the server answers."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head + body_prefix)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and b"}" in data:
                break
        return b"".join(chunks)


def test_ingest_and_queries_over_http_and_the_cli_reads_the_same_db(
    live_server, make_event
) -> None:
    now = datetime.now(UTC)
    events = [
        make_event(i, source=f"cam-{i % 3}", ts=now - timedelta(seconds=i)) for i in range(100)
    ]
    first = _post(live_server, events)
    assert first.status_code == 200 and first.json()["stored"] == 100
    again = _post(live_server, events)
    assert again.json()["duplicates"] == 100
    ov = httpx.get(f"{live_server.url}/api/v1/stats/overview").json()
    assert ov["events_total"] == 100 and ov["source_count"] == 3
    assert _post(live_server, events[:1], headers={}).status_code == 401
    # the CLI on the same file while the server runs
    out = subprocess.run(
        [EXE, "overview", "--json", "--db", live_server.db],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["events_total"] == 100


def test_a_50_mb_body_gets_413_before_it_is_read(live_server) -> None:
    head = (
        b"POST /api/v1/stats/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"X-API-Key: " + live_server.headers["X-API-Key"].encode() + b"\r\n"
        b"Content-Length: " + str(50 * 1024 * 1024).encode() + b"\r\n\r\n"
    )
    answer = _raw_request(live_server.url, head, b"[" + b" " * 65536)
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 413 " in status_line
    assert b"larger than 8 MB" in rest
    assert httpx.get(f"{live_server.url}/api/v1/stats/health").status_code == 200


def test_serve_on_postgresql(serve_stats, pg_dsn: str, make_event) -> None:
    server = serve_stats(pg_dsn)
    health = httpx.get(f"{server.url}/api/v1/stats/health", headers=server.headers).json()
    assert health["engine"] == "postgres"
    events = [make_event(i) for i in range(250)]
    assert _post(server, events).json()["stored"] == 250
    assert _post(server, events[:100]).json()["duplicates"] == 100
    assert httpx.get(f"{server.url}/api/v1/stats/overview").json()["events_total"] == 250


def test_serve_refuses_to_start_without_a_key(tmp_path: Path) -> None:
    res = subprocess.run(
        [EXE, "serve", "--db", str(tmp_path / "x.db"), "--port", "1"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "VISION_STATS_API_KEY": ""},
        timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 2
    assert "'VISION_STATS_API_KEY' is not set or empty" in res.stderr
    assert "stats.allow_anonymous = true" in res.stderr


def test_anonymous_ingest_is_allowed_only_when_configured_and_warned(
    serve_stats, tmp_path: Path, make_event
) -> None:
    server = serve_stats(
        str(tmp_path / "anon.db"),
        "--set", "stats.allow_anonymous=true",
        env={"VISION_STATS_API_KEY": ""},
    )  # fmt: skip
    assert _post(server, [make_event(1)], headers={}).status_code == 200
    assert "ingest is OPEN" in server.output()
