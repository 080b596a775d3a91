"""What the CLI prints: aligned tables for people, JSON for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from vision_core.textsafe import safe_json, safe_text
from vision_core.types import StatsEvent
from vision_stats.models import (
    ClassTotal,
    CountSeries,
    DoctorReport,
    Overview,
    PruneResult,
    SourceInfo,
    ZonesReport,
)


def to_json(obj: object) -> str:
    """Indented JSON, terminal-safe: C1 and bidi controls written as \\uNNNN escapes."""
    return safe_json(msgspec.json.format(msgspec.json.encode(obj), indent=2).decode())


def _ts(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def _ago(sec: float) -> str:
    if sec < 90:
        return f"{sec:.0f} s"
    if sec < 5400:
        return f"{sec / 60:.0f} min"
    if sec < 129600:
        return f"{sec / 3600:.0f} h"
    return f"{sec / 86400:.0f} d"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], right: set[int]) -> str:
    """Columns padded to their widest cell; the columns in `right` right-aligned."""
    cells = [[safe_text(c) for c in headers]] + [[safe_text(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(r: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()

    out = [line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]]
    return "\n".join(out)


def recent_table(events: list[StatsEvent]) -> str:
    if not events:
        return "no events"
    rows = [
        (
            _ts(e.ts_utc),
            e.source_id,
            e.mode,
            e.frame_index,
            _ms(e.latency_ms),
            e.detections_total,
            ", ".join(f"{k} {n}" for k, n in e.counts_by_class.items() if n) or "-",
        )
        for e in events
    ]
    headers = ("time (UTC)", "source", "mode", "frame", "latency ms", "detections", "classes")
    return table(headers, rows, {3, 4, 5})


def overview_table(o: Overview) -> str:
    rows = [
        ("events", f"{o.events_total:,}"),
        ("detections", f"{o.detections_total:,}"),
        ("avg latency ms", _ms(o.avg_latency_ms)),
        ("sources", o.source_count),
        ("last event (UTC)", _ts(o.last_event_ts_utc)),
    ]
    return table(("figure", "value"), rows, {1})


def classes_table(totals: list[ClassTotal]) -> str:
    if not totals:
        return "no detections"
    return table(
        ("class", "detections"), [(t.class_name, f"{t.detections:,}") for t in totals], {1}
    )


def sources_table(sources: list[SourceInfo]) -> str:
    if not sources:
        return "no sources"
    rows = [
        (
            s.source_id,
            _ts(s.last_seen_utc),
            _ago(s.seconds_since_last),
            f"{s.events:,}",
            f"{s.detections:,}",
            _ms(s.avg_latency_ms),
        )
        for s in sources
    ]
    headers = ("source", "last seen (UTC)", "silent for", "events", "detections", "avg latency ms")
    return table(headers, rows, {2, 3, 4, 5})


def prune_line(result: PruneResult) -> str:
    line = f"deleted {result.events_deleted:,} events before {_ts(result.cutoff_utc)} UTC"
    if result.track_cutoff_utc is not None:
        line += (
            f", {result.track_events_deleted:,} tracking events before"
            f" {_ts(result.track_cutoff_utc)} UTC"
        )
    return line


def doctor_table(r: DoctorReport) -> str:
    rows = [
        ("engine", r.engine),
        ("events", f"{r.events:,}"),
        ("time out of range (deleted)", f"{r.bad_time:,}"),
        ("numbers out of bounds (clamped)", f"{r.bad_numbers:,}"),
        ("counts_json out of bounds (rewritten)", f"{r.bad_counts:,}"),
        ("repaired", "yes" if r.repaired else "no (--check)"),
        ("rollups rebuilt", "yes" if r.rollups_rebuilt else "no"),
        ("tracking rows", f"{r.track_rows:,}"),
        ("tracking rows unreadable (deleted)", f"{r.track_deleted:,}"),
        ("tracking rows out of bounds (clamped)", f"{r.track_clamped:,}"),
    ]
    return table(("check", "result"), rows, {1})


_BUCKET_FORMAT = {"minute": "%Y-%m-%d %H:%M", "hour": "%Y-%m-%d %H:00", "day": "%Y-%m-%d"}


def counts_table(c: CountSeries) -> str:
    """Crossings per bucket, line and class, then the totals of the range."""
    fmt = _BUCKET_FORMAT[c.bucket]
    span = f"{c.since_utc.strftime(fmt)} to {c.until_utc.strftime(fmt)} (UTC)"
    if not c.rows:
        return f"no crossings from {span}"
    rows = [
        (r.ts_utc.strftime(fmt), r.line, r.class_name, f"{r.in_:,}", f"{r.out:,}",
         f"{r.in_ + r.out:,}")
        for r in c.rows
    ]  # fmt: skip
    headers = ("time (UTC)", "line", "class", "in", "out", "total")
    totals = [
        (t.line, t.class_name, f"{t.in_:,}", f"{t.out:,}", f"{t.in_ + t.out:,}") for t in c.totals
    ]
    return (
        f"crossings per {c.bucket}, {span}\n"
        + table(headers, rows, {3, 4, 5})
        + "\n\ntotal\n"
        + table(("line", "class", "in", "out", "total"), totals, {2, 3, 4})
    )


def _sec(value: float) -> str:
    return f"{value:,.1f}"


def zones_table(r: ZonesReport) -> str:
    """Occupancy now per source and zone, then dwell per zone and class."""
    if r.occupancy:
        rows = [
            (
                z.source_id,
                z.zone,
                f"{z.occupancy:,}",
                ", ".join(f"{k} {n}" for k, n in sorted(z.by_class.items())) or "-",
                f"{z.enters:,}",
                f"{z.exits:,}",
                f"{z.lost_exits:,}",
                f"{z.reported_occupancy:,}",
                _ts(z.last_event_utc),
            )
            for z in r.occupancy
        ]
        headers = ("source", "zone", "inside", "by class", "enters", "exits", "lost",
                   "device says", "last event (UTC)")  # fmt: skip
        now = "occupancy now\n" + table(headers, rows, {2, 4, 5, 6, 7})
    else:
        now = "no zone events"
    span = f"{_ts(r.dwell_since_utc)} to {_ts(r.dwell_until_utc)} (UTC)"
    if not r.dwell:
        return f"{now}\n\nno zone exits from {span}"
    dwell = [
        (d.zone, d.class_name, f"{d.exits:,}", f"{d.lost_exits:,}", _sec(d.mean_sec),
         _sec(d.p50_sec), _sec(d.p95_sec), _sec(d.max_sec))
        for d in r.dwell
    ]  # fmt: skip
    titles = ("zone", "class", "exits", "lost", "mean s", "p50 s", "p95 s", "max s")
    return f"{now}\n\ndwell, {span}\n" + table(titles, dwell, {2, 3, 4, 5, 6, 7})
