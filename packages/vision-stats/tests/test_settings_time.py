"""Settings from the config, and the time/duration parser the API and CLI share."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vision_core.config import build_config
from vision_stats.errors import AuthConfigError, TimeParseError
from vision_stats.settings import StatsSettings
from vision_stats.timeparse import parse_duration, parse_time

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("2w", timedelta(days=14)),
        ("1.5h", timedelta(minutes=90)),
        (" 15M ", timedelta(minutes=15)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "30", "d30", "30 days", "-5m", "1y"])
def test_bad_durations_name_the_expected_form(text: str) -> None:
    with pytest.raises(TimeParseError, match="expected a duration like 30d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("24h", NOW - timedelta(hours=24)),
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01 10:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),  # no zone: UTC
    ],
)
def test_times(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_a_bad_time_names_the_parameter() -> None:
    with pytest.raises(TimeParseError, match="since: expected an ISO 8601 time"):
        parse_time("yesterday", what="since")


def test_settings_take_the_stats_section_and_the_key_from_the_environment() -> None:
    cfg = build_config({"stats": {"db": "x.db", "port": 9000, "max_body_mb": 2.5}})
    s = StatsSettings.from_config(cfg, environ={"VISION_STATS_API_KEY": "k-123456"})
    assert (s.db, s.port, s.max_body_bytes) == ("x.db", 9000, int(2.5 * 1024 * 1024))
    assert s.api_key.reveal() == "k-123456" and "k-123456" not in repr(s)
    s.check_auth()
    overridden = StatsSettings.from_config(cfg, db="other.db", port=0, environ={})
    assert (overridden.db, overridden.port) == ("other.db", 0)


def test_an_empty_key_is_refused_unless_anonymous_is_allowed() -> None:
    cfg = build_config({})
    with pytest.raises(AuthConfigError, match="'VISION_STATS_API_KEY' is not set or empty"):
        StatsSettings.from_config(cfg, environ={}).check_auth()
    anon = build_config({"stats": {"allow_anonymous": True}})
    StatsSettings.from_config(anon, environ={}).check_auth()


def test_the_dsn_is_shown_without_its_password() -> None:
    s = StatsSettings(db="postgresql://u:pw-secret@db/stats")
    assert s.db_display == "postgresql://u:***@db/stats"
