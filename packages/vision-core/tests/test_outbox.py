"""The SQLite stats outbox: committed before acknowledged, capped by policy, crash-safe."""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vision_core.logging import StructuredLogger
from vision_core.stats.outbox import Outbox, OutboxError, payloads_as_array
from vision_core.types import StatsEvent, make_stats_event


def _event(i: int, source: str = "cam-1") -> StatsEvent:
    return make_stats_event(
        source_id=source,
        mode="stream",
        frame_index=i,
        latency_ms=1.5,
        detections=[],
        event_id=f"{source}-{i:06d}",
        ts_utc=datetime(2024, 1, 1, tzinfo=UTC),
    )


def test_put_peek_ack_round_trip(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert box.put([_event(i) for i in range(5)]) == 5
        assert box.pending() == 5
        items = box.peek(3)
        assert [it.event_id for it in items] == ["cam-1-000000", "cam-1-000001", "cam-1-000002"]
        assert items[0].event() == _event(0)
        assert box.pending() == 5  # peek removes nothing
        assert box.ack([it.id for it in items]) == 3
        assert box.ack([items[0].id, 10_000]) == 0  # acked twice, unknown id: harmless
        assert [it.event_id for it in box.peek(10)] == ["cam-1-000003", "cam-1-000004"]
        assert box.pending() == 2
        assert box.put([]) == 0 and box.peek(0) == []


def test_payloads_form_a_json_array_of_events(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.put([_event(1), _event(2)])
        body = json.loads(payloads_as_array(box.peek(10)))
    assert [e["event_id"] for e in body] == ["cam-1-000001", "cam-1-000002"]


def test_same_event_id_is_stored_once(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert box.put([_event(1), _event(2)]) == 2
        assert box.put([_event(2), _event(3)]) == 1
        assert box.pending() == 3


def test_put_is_committed_when_it_returns(tmp_path: Path) -> None:
    """Another connection (another process, a crash later) sees the rows at once."""
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        box.put([_event(i) for i in range(3)])
        other = sqlite3.connect(path)
        try:
            assert other.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 3
        finally:
            other.close()


def test_events_survive_a_killed_process(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    code = (
        "import os, sys\n"
        "from datetime import UTC, datetime\n"
        "from vision_core.stats import Outbox\n"
        "from vision_core.types import make_stats_event\n"
        "box = Outbox(sys.argv[1])\n"
        "box.put([make_stats_event(source_id='s', mode='stream', frame_index=i, latency_ms=1,"
        " detections=[], event_id=f'e{i}') for i in range(50)])\n"
        "os._exit(0)  # no close, no checkpoint: as if killed\n"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=60)
    with Outbox(path) as box:
        assert box.pending() == 50
        assert box.integrity_check() == []


def test_wal_and_synchronous_settings(tmp_path: Path) -> None:
    with Outbox(tmp_path / "n.db") as normal:
        conn = normal._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    with Outbox(tmp_path / "f.db", synchronous="FULL") as full:
        assert full._conn.execute("PRAGMA synchronous").fetchone()[0] == 2


def _capture_logger() -> tuple[StructuredLogger, io.StringIO]:
    buf = io.StringIO()
    return StructuredLogger(None, console=buf, console_level="DEBUG"), buf


def test_drop_oldest_keeps_the_newest_events_and_counts(tmp_path: Path) -> None:
    log, buf = _capture_logger()
    with Outbox(tmp_path / "o.db", max_events=5, logger=log) as box:
        box.put([_event(i) for i in range(4)])
        box.put([_event(i) for i in range(4, 8)])
        assert box.pending() == 5
        assert [it.event_id for it in box.peek(10)] == [f"cam-1-{i:06d}" for i in range(3, 8)]
        assert box.dropped == 3
    assert "drop_oldest dropped 3 event(s)" in buf.getvalue()
    with Outbox(tmp_path / "o.db", max_events=5) as again:  # the counter is kept on disk
        assert again.dropped == 3 and again.pending() == 5


def test_drop_newest_refuses_new_events_when_full(tmp_path: Path) -> None:
    log, buf = _capture_logger()
    with Outbox(tmp_path / "o.db", max_events=5, policy="drop_newest", logger=log) as box:
        assert box.put([_event(i) for i in range(4)]) == 4
        assert box.put([_event(i) for i in range(4, 8)]) == 1
        assert [it.event_id for it in box.peek(10)] == [f"cam-1-{i:06d}" for i in range(5)]
        assert box.dropped == 3
        box.ack([box.peek(1)[0].id])
        assert box.put([_event(9)]) == 1  # room again
    assert "drop_newest dropped 3 event(s)" in buf.getvalue()


def test_drop_log_lines_are_throttled(tmp_path: Path) -> None:
    log, buf = _capture_logger()
    with Outbox(tmp_path / "o.db", max_events=2, logger=log) as box:
        for i in range(50):
            box.put([_event(i)])
        assert box.dropped == 48
    assert len([ln for ln in buf.getvalue().splitlines() if "outbox full" in ln]) == 1


def test_oldest_age(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert box.oldest_age() == 0.0
        box.put([_event(1)])
        time.sleep(0.05)
        assert 0.04 <= box.oldest_age() < 5
        box.ack([it.id for it in box.peek(5)])
        assert box.oldest_age() == 0.0


def test_last_error_is_kept_across_restarts(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert box.last_error is None
        box.set_last_error("stats endpoint answered 503")
    with Outbox(tmp_path / "o.db") as box:
        assert box.last_error == "stats endpoint answered 503"
        box.set_last_error(None)
    with Outbox(tmp_path / "o.db") as box:
        assert box.last_error is None


def test_ack_of_many_ids_in_chunks(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.put([_event(i) for i in range(1200)])
        assert box.ack([it.id for it in box.peek(1200)]) == 1200
        assert box.pending() == 0


def test_corrupt_file_is_moved_aside_and_a_new_outbox_started(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database, it is a text file " * 100)
    log, buf = _capture_logger()
    with Outbox(path, logger=log) as box:
        assert box.pending() == 0
        assert box.put([_event(1)]) == 1
        assert box.integrity_check() == []
    aside = list(tmp_path.glob("o.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert "moved to" in buf.getvalue()


def test_closed_outbox_raises_a_clear_error(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    box.close()
    box.close()  # idempotent
    with pytest.raises(OutboxError, match="closed"):
        box.put([_event(1)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_events": 0}, "max_events"),
        ({"policy": "drop_all"}, "policy"),
        ({"synchronous": "OFF"}, "synchronous"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Outbox(tmp_path / "o.db", **kwargs)  # type: ignore[arg-type]


def test_concurrent_producers_and_a_sender_lose_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    acked: list[str] = []
    done = threading.Event()

    def produce(src: str) -> None:
        for i in range(200):
            box.put([_event(i, src)])

    def consume() -> None:
        while not done.is_set() or box.pending():
            items = box.peek(37)
            box.ack(it.id for it in items)
            acked.extend(it.event_id for it in items)

    producers = [threading.Thread(target=produce, args=(f"s{k}",)) for k in range(4)]
    sender = threading.Thread(target=consume)
    sender.start()
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    done.set()
    sender.join(timeout=30)
    box.close()
    assert len(acked) == len(set(acked)) == 800


def test_from_config_takes_the_cap_and_policy(tmp_path: Path) -> None:
    from vision_core.config import build_config

    sink = build_config(
        {"deploy": {"stats": {"outbox_max_events": 3, "outbox_policy": "drop_newest"}}}
    ).deploy.stats
    with Outbox.from_config(tmp_path / "o.db", sink) as box:
        assert (box.max_events, box.policy) == (3, "drop_newest")


def test_a_single_event_struct_is_put_like_a_batch_of_one(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        assert box.put(_event(7)) == 1
        (item,) = box.peek(5)
        assert (item.event_id, item.kind) == ("cam-1-000007", "frame")


def test_dead_letters_leave_the_queue_and_can_be_requeued_or_purged(tmp_path: Path) -> None:
    with Outbox(tmp_path / "o.db") as box:
        box.put([_event(i) for i in range(4)])
        first, second = box.peek(2)
        assert box.bury(first, 422, "frame_index: too large")
        assert not box.bury(first, 422, "again")  # no longer pending: nothing happens
        assert box.bury(second, 500, "internal error")
        assert box.pending() == 2 and box.dead_count() == 2
        assert [it.event_id for it in box.peek(10)] == ["cam-1-000002", "cam-1-000003"]
        dead = box.dead_letters()
        assert [(d.event_id, d.status, d.reason) for d in dead] == [
            ("cam-1-000000", 422, "frame_index: too large"),
            ("cam-1-000001", 500, "internal error"),
        ]
        assert json.loads(dead[0].payload)["event_id"] == "cam-1-000000"
        assert box.requeue_dead([dead[1].id]) == 1  # back in the queue, behind the rest
        assert [it.event_id for it in box.peek(10)][-1] == "cam-1-000001"
        assert box.dead_count() == 1 and box.pending() == 3
        assert box.purge_dead() == 1 and box.dead_count() == 0 and box.dead_letters() == []
    with Outbox(tmp_path / "o.db") as again:  # the counts survive a restart
        assert again.pending() == 3 and again.dead_count() == 0


def test_dead_letters_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vision_core.stats.outbox as outbox_module

    monkeypatch.setattr(outbox_module, "MAX_DEAD_LETTERS", 3)
    with Outbox(tmp_path / "o.db") as box:
        box.put([_event(i) for i in range(5)])
        for item in box.peek(5):
            box.bury(item, 422, "bad")
        assert box.dead_count() == 3 and box.dropped == 2
        assert [d.event_id for d in box.dead_letters()] == [f"cam-1-00000{i}" for i in (2, 3, 4)]


def test_a_version_1_outbox_is_migrated_with_its_events(tmp_path: Path) -> None:
    """Files written before event kinds and dead letters existed open with nothing lost."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL "
        "UNIQUE, created_at REAL NOT NULL, payload BLOB NOT NULL);"
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "PRAGMA user_version = 1;"
    )
    from vision_core.types import to_json

    conn.execute(
        "INSERT INTO events (event_id, created_at, payload) VALUES (?, ?, ?)",
        ("cam-1-000001", time.time(), to_json(_event(1))),
    )
    conn.commit()
    conn.close()
    with Outbox(path) as box:
        (item,) = box.peek(5)
        assert (item.event_id, item.kind, item.event()) == ("cam-1-000001", "frame", _event(1))
        assert box.dead_count() == 0
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2


def test_events_of_other_kinds_share_the_queue_and_keep_their_kind(tmp_path: Path) -> None:
    import msgspec

    from vision_core.stats.outbox import register_kind

    class Crossing(msgspec.Struct):
        event_id: str
        line: str

    register_kind(Crossing, "crossing")
    with Outbox(tmp_path / "o.db") as box:
        box.put([_event(1), Crossing("x-1", "gate"), _event(2)])
        assert [(it.event_id, it.kind) for it in box.peek(5)] == [
            ("cam-1-000001", "frame"),
            ("x-1", "crossing"),
            ("cam-1-000002", "frame"),
        ]
        with pytest.raises(TypeError, match="not an outbox event type"):
            box.put([msgspec.Struct()])  # type: ignore[list-item]


def test_the_dead_letters_command_exports_before_it_retries_or_purges(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from vision_core.stats.deadletters import dead_letters_command

    paths = [tmp_path / "a.db", tmp_path / "b.db"]
    for n, path in enumerate(paths):
        with Outbox(path) as box:
            box.put([_event(10 * n + i) for i in range(3)])
            for item in box.peek(2):
                box.bury(item, 422, f"bad {item.event_id}")
    command = dead_letters_command(lambda cfg: [*paths, tmp_path / "missing.db"])
    runner = CliRunner()
    listed = runner.invoke(command, ["--json"])
    assert listed.exit_code == 0, listed.output
    assert sorted(r["event_id"] for r in json.loads(listed.output)) == [
        "cam-1-000000", "cam-1-000001", "cam-1-000010", "cam-1-000011"
    ]  # fmt: skip
    export = tmp_path / "refused.jsonl"
    retried = runner.invoke(command, ["--export", str(export), "--retry"])
    assert retried.exit_code == 0, retried.output
    exported = [json.loads(line) for line in export.read_text().splitlines()]
    assert {(r["event_id"], r["status"], r["reason"]) for r in exported} >= {
        ("cam-1-000000", 422, "bad cam-1-000000")
    }
    assert exported[0]["event"]["frame_index"] == 0
    for path in paths:
        with Outbox(path) as box:
            assert box.dead_count() == 0 and box.pending() == 3  # back in the queue
            box.bury(box.peek(1)[0], 500, "again")
    purged = runner.invoke(command, ["--purge"])
    assert purged.exit_code == 0 and "2 dead letter(s) deleted" in purged.output
    assert runner.invoke(command, ["--retry", "--purge"]).exit_code == 2


def test_dead_letters_print_terminal_safe(tmp_path: Path) -> None:
    """A refusal reason or event id from elsewhere cannot drive the terminal (title, clear
    screen, colours), in the table and in --json alike."""
    from click.testing import CliRunner

    from vision_core.stats.deadletters import dead_letters_command

    nasty = "\x1b]0;pwned\x07\x1b[2J\x1b[31mred\u202e"
    path = tmp_path / "a.db"
    with Outbox(path) as box:
        box.put([_event(1)])
        box.bury(box.peek(1)[0], 422, f"bad source {nasty}")
    command = dead_letters_command(lambda cfg: [path])
    for args in ([], ["--json"]):
        out = CliRunner().invoke(command, args).output
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out
        assert "pwned" in out and "red" in out  # the text is shown, escaped


def test_tracking_events_travel_in_the_outbox_under_their_tags(tmp_path: Path) -> None:
    from vision_core.stats.sender import endpoint_for
    from vision_core.types import CrossingEvent, IntervalSummary

    ts = datetime(2026, 1, 1, tzinfo=UTC)
    crossing = CrossingEvent(
        event_id="x1", ts_utc=ts, source_id="cam", line="gate", direction="in",
        class_name="car", track_id=7,
    )  # fmt: skip
    summary = IntervalSummary(event_id="s1", start_utc=ts, end_utc=ts, source_id="cam", frames=3)
    with Outbox(tmp_path / "o.db") as box:
        box.put([_event(1), crossing, summary])
        items = box.peek(5)
    assert [it.kind for it in items] == ["frame", "crossing", "summary"]
    assert json.loads(items[1].payload)["kind"] == "crossing"  # the tag is on the wire
    url = "http://stats:8100/api/v1/stats/events"
    assert endpoint_for(url, "frame") == url
    assert {endpoint_for(url, k) for k in ("crossing", "zone", "summary")} == {
        "http://stats:8100/api/v1/stats/track-events"
    }
