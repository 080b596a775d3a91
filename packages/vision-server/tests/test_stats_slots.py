"""Each worker's outbox slot, adoption of orphaned outboxes, deterministic event ids."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from vision_core.logging import StructuredLogger
from vision_core.stats import Outbox
from vision_core.types import Detection, make_stats_event
from vision_server.settings import ServerSettings
from vision_server.stats import FrameMeta, ServerStats, event_id_for


def _stats(settings: ServerSettings, buf: io.StringIO | None = None) -> ServerStats:
    log = StructuredLogger(None, console=buf) if buf is not None else StructuredLogger(None)
    return ServerStats(settings, log, "m.onnx@abc")


def test_workers_take_distinct_slots_and_find_them_again(
    make_settings: Callable[..., ServerSettings],
) -> None:
    settings = make_settings()
    a, b = _stats(settings), _stats(settings)
    assert (a.slot.index, b.slot.index) == (0, 1)
    a.record([FrameMeta("cam", 1, None, 0.0)], [[]], 0.001)
    a.close()
    again = _stats(settings)  # a restarted worker gets the free slot 0 and its events
    assert again.slot.index == 0 and again.outbox.pending() == 1
    again.close()
    b.close()


def test_an_orphaned_outbox_is_adopted_and_removed(
    make_settings: Callable[..., ServerSettings],
) -> None:
    settings = make_settings()
    outbox_dir = settings.outbox_dir
    outbox_dir.mkdir(parents=True)
    with Outbox(outbox_dir / "server-3.db") as orphan:  # a worker of a larger deployment
        orphan.put(
            [
                make_stats_event(
                    source_id="old", mode="stream", frame_index=i, latency_ms=1, detections=[]
                )
                for i in range(7)
            ]
        )
    buf = io.StringIO()
    stats = _stats(settings, buf)
    assert stats.slot.index == 0 and stats.adopted == 7 and stats.outbox.pending() == 7
    assert not (outbox_dir / "server-3.db").exists()
    assert "adopted 7 undelivered event(s) from server-3.db" in buf.getvalue()
    held = _stats(settings)  # a live worker's outbox is never adopted
    assert held.adopted == 0 and stats.outbox.pending() == 7
    held.close()
    stats.close()


def test_events_carry_the_frame_and_its_detections(
    make_settings: Callable[..., ServerSettings],
) -> None:
    stats = _stats(make_settings())
    det = Detection(class_id=1, class_name="square", score=0.9, xyxy=(0, 0, 1, 1))
    ts = datetime(2024, 5, 1, tzinfo=UTC)
    (event,) = stats.events_for([FrameMeta("cam-2", 5, ts, 10.0)], [[det, det]], 10.25)
    assert (event.source_id, event.mode, event.frame_index, event.ts_utc) == (
        "cam-2",
        "stream",
        5,
        ts,
    )
    assert event.latency_ms == 250.0 and event.detections_total == 2
    assert event.counts_by_class == {"square": 2} and event.model == "m.onnx@abc"
    assert event.event_id == event_id_for("cam-2", 5, ts)
    stats.close()


def test_event_ids_are_stable_with_a_timestamp_and_unique_without() -> None:
    ts = datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert event_id_for("a", 1, ts) == event_id_for("a", 1, ts)
    assert event_id_for("a", 1, ts) != event_id_for("a", 2, ts)
    assert event_id_for("a", 1, ts) != event_id_for("b", 1, ts)
    assert event_id_for("a", 1, None) != event_id_for("a", 1, None)


def test_a_broken_outbox_never_fails_a_frame(
    make_settings: Callable[..., ServerSettings],
) -> None:
    buf = io.StringIO()
    stats = _stats(make_settings(), buf)
    stats.outbox.close()  # every put now raises
    stats.record([FrameMeta("cam", 1, None, 0.0)], [[]], 0.001)
    stats.record([FrameMeta("cam", 2, None, 0.0)], [[]], 0.001)
    assert stats.recorder.record_errors_total == 2
    assert stats.snapshot()["record_errors_total"] == 2
    assert buf.getvalue().count("events not recorded") == 1  # throttled
    stats.slot.release()


def test_dead_letters_of_every_worker_slot_are_listed(tmp_path: Path) -> None:
    """`vision-server dead-letters` reads the outbox of each worker slot."""
    from click.testing import CliRunner

    from vision_server.cli import main

    outbox_dir = tmp_path / "outbox"
    for k in (0, 1):
        with Outbox(outbox_dir / f"server-{k}.db") as box:
            box.put(
                [make_stats_event(source_id=f"cam-{k}", mode="stream", frame_index=0,
                                  latency_ms=1.0, detections=[])]
            )  # fmt: skip
            box.bury(box.peek(1)[0], 422, f"refused {k}")
    out = CliRunner().invoke(main, ["dead-letters", "--set", f"run.workdir={tmp_path}", "--json"])
    assert out.exit_code == 0, out.output
    records = json.loads(out.output)
    assert sorted(r["reason"] for r in records) == ["refused 0", "refused 1"]
    assert {Path(r["outbox"]).name for r in records} == {"server-0.db", "server-1.db"}
