"""vision-stats: parse, load the config, call the store or the service. No logic here."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import click

from vision_core.cli import config_options, fail, keys_command, load_cli_config, version_option
from vision_core.logging import StructuredLogger
from vision_core.textsafe import safe_text
from vision_core.types import StatsEvent
from vision_stats import render
from vision_stats.cli_mqtt import ingest_mqtt
from vision_stats.errors import AuthConfigError, InvalidQueryError, StatsError
from vision_stats.models import (
    ClassTotal,
    CountSeries,
    DoctorReport,
    Overview,
    SourceInfo,
    TrackBucket,
    ZonesReport,
)
from vision_stats.settings import StatsSettings
from vision_stats.store import StatsStore, open_store
from vision_stats.timeparse import parse_duration, parse_optional_time

F = TypeVar("F", bound=Callable[..., Any])


def _db_options(fn: F) -> F:
    fn = click.option(
        "--db",
        default=None,
        metavar="PATH|DSN",
        help="SQLite file or postgresql:// DSN (default: stats.db of the config).",
    )(fn)
    return config_options(fn)


def _json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")(fn)


def _filter_options(fn: F) -> F:
    fn = click.option("--until", default=None, help="To (exclusive): ISO 8601 or e.g. 1h.")(fn)
    fn = click.option("--since", default=None, help="From: ISO 8601, or e.g. 24h for 24h ago.")(fn)
    return click.option("--source", default=None, help="Only this source_id.")(fn)


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (InvalidQueryError, AuthConfigError) as exc:
        fail(safe_text(exc), code=2)
    except StatsError as exc:
        fail(safe_text(exc))


@contextmanager
def _store(
    config_path: Path | None, overrides: tuple[str, ...], db: str | None
) -> Iterator[StatsStore]:
    cfg = load_cli_config(config_path, overrides)
    with _errors():
        store = open_store(db or cfg.stats.db, create=False)
        try:
            yield store
        finally:
            store.close()


def _show(obj: object, as_json: bool, table: Callable[[Any], str]) -> None:
    click.echo(render.to_json(obj) if as_json else table(obj))


class Filters(TypedDict):
    """--source, --since and --until, as the store's keyword arguments."""

    source: str | None
    since: datetime | None
    until: datetime | None


def _read_command(
    table: Callable[[Any], str], *, filters: bool = True
) -> Callable[[Callable[..., object]], Callable[..., None]]:
    """A command that reads the store: --db, the config options and --json, and with
    `filters` --source, --since and --until. The function gets the open store, with
    `filters` a Filters (the times parsed), and its own options; what it returns is
    printed as a table or as JSON."""

    def decorate(read: Callable[..., object]) -> Callable[..., None]:
        @functools.wraps(read)
        def command(
            as_json: bool,
            db: str | None,
            config_path: Path | None,
            overrides: tuple[str, ...],
            **options: Any,
        ) -> None:
            with _store(config_path, overrides, db) as store, _errors():
                if not filters:
                    _show(read(store, **options), as_json, table)
                    return
                where = Filters(
                    source=options.pop("source"),
                    since=parse_optional_time(options.pop("since"), what="--since"),
                    until=parse_optional_time(options.pop("until"), what="--until"),
                )
                _show(read(store, where, **options), as_json, table)

        command = _json_option(_db_options(command))
        return _filter_options(command) if filters else command

    return decorate


@click.group()
@version_option("vision-stats")
def main() -> None:
    """The statistics store, its API, dashboard and CLI."""


@main.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@_read_command(render.recent_table)
def recent(store: StatsStore, where: Filters, limit: int) -> list[StatsEvent]:
    """The newest events."""
    return store.recent(limit, **where)


@main.command()
@_read_command(render.overview_table)
def overview(store: StatsStore, where: Filters) -> Overview:
    """Totals: events, detections, average latency, sources, last event."""
    return store.overview(**where)


@main.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@_read_command(render.classes_table)
def classes(store: StatsStore, where: Filters, limit: int) -> list[ClassTotal]:
    """Detections per class, most first."""
    return store.class_totals(limit, **where)


@main.command()
@_read_command(render.sources_table, filters=False)
def sources(store: StatsStore) -> list[SourceInfo]:
    """Every source with its last event: the longest silent first."""
    return store.sources()


@main.command()
@click.option(
    "--older-than",
    default=None,
    metavar="DURATION",
    help="Delete events older than this (30d, 12h). Default: stats.retention_days.",
)
@_json_option
@_db_options
def prune(
    older_than: str | None,
    as_json: bool,
    db: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Retention: delete old events (and take them off every total)."""
    cfg = load_cli_config(config_path, overrides)
    if older_than is None and not cfg.stats.retention_days:
        fail("give --older-than (e.g. 30d) or set stats.retention_days", code=2)
    with _errors():
        age = (
            parse_duration(older_than, what="--older-than")
            if older_than is not None
            else parse_duration(f"{cfg.stats.retention_days}d")
        )
    with _store(config_path, overrides, db) as store, _errors():
        _show(store.prune(age), as_json, render.prune_line)


@main.command()
@click.option("--check", is_flag=True, help="Only count the bad rows; change nothing.")
@_read_command(render.doctor_table, filters=False)
def doctor(store: StatsStore, check: bool) -> DoctorReport:
    """Repair rows outside the bounds (bad times, huge numbers) and rebuild the totals."""
    return store.doctor(repair=not check)


@main.command()
@click.option("--host", default=None, help="Listen address (default: stats.host).")
@click.option("--port", default=None, type=click.IntRange(0, 65535), help="Default: stats.port.")
@_db_options
def serve(
    host: str | None,
    port: int | None,
    db: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Run the ingest API and the dashboard (Ctrl-C stops)."""
    from vision_stats.service import serve as run_service

    cfg = load_cli_config(config_path, overrides)
    log = StructuredLogger(
        Path(cfg.run.workdir) / "logs" / "stats.jsonl", cfg.run.log_level, console=True
    )
    with _errors():
        settings = StatsSettings.from_config(cfg, db=db, host=host, port=port)
        settings.check_auth()
        run_service(settings, log)
    log.close()


@main.command()
@click.option(
    "--bucket",
    type=click.Choice(["minute", "hour", "day"]),
    default="hour",
    show_default=True,
    help="Bucket width (UTC); without --since: the last 60 minutes, 24 hours or 30 days.",
)
@click.option("--line", default=None, help="Only this line.")
@_read_command(render.counts_table)
def counts(store: StatsStore, where: Filters, bucket: TrackBucket, line: str | None) -> CountSeries:
    """Line crossings per bucket, line and class, in and out."""
    return store.track_counts(bucket=bucket, line=line, **where)


@main.command()
@click.option("--zone", default=None, help="Only this zone.")
@_read_command(render.zones_table)
def zones(store: StatsStore, where: Filters, zone: str | None) -> ZonesReport:
    """Zone occupancy now, and dwell per zone and class (--since: default 24h)."""
    source = where["source"]
    end = where["until"] or datetime.now(UTC)
    start = where["since"] or end - timedelta(hours=24)
    return ZonesReport(
        occupancy=store.zone_occupancy(source=source, zone=zone),
        dwell_since_utc=start,
        dwell_until_utc=end,
        dwell=store.dwell_stats(since=start, until=end, source=source, zone=zone),
    )


main.add_command(keys_command)
main.add_command(ingest_mqtt)
