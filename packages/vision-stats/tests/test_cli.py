"""`vision-stats` commands: readable tables, --json for scripts, --db or the config file."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from vision_stats.cli import main
from vision_stats.store import open_store


@pytest.fixture
def filled(db_url: str, make_event) -> str:
    now = datetime.now(UTC)
    with open_store(db_url) as store:
        store.insert(
            [
                make_event(i, source=f"cam-{i % 2}", ts=now - timedelta(minutes=i), latency=10.0,
                           counts={"car": 2, "person": 1} if i % 2 else {"person": 1})
                for i in range(6)
            ]
            + [make_event(99, source="cam-old", ts=now - timedelta(days=40), counts={"bus": 4})]
        )  # fmt: skip
    return db_url


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_recent_prints_a_table_newest_first(filled: str) -> None:
    code, out, _ = run("recent", "--db", filled, "--limit", "3")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["time", "(UTC)", "source", "mode"]
    assert len(lines) == 2 + 3
    assert "cam-0" in lines[2] and "person 1" in lines[2]


def test_recent_json_filters_by_source(filled: str) -> None:
    code, out, _ = run("recent", "--db", filled, "--source", "cam-1", "--json")
    assert code == 0
    events = json.loads(out)
    assert [e["event_id"] for e in events] == ["cam-1-000001", "cam-1-000003", "cam-1-000005"]
    assert events[0]["counts_by_class"] == {"car": 2, "person": 1}


def test_overview_table_and_json_agree(filled: str) -> None:
    code, out, _ = run("overview", "--db", filled)
    assert code == 0
    assert re.search(r"^events +7$", out, re.M) and re.search(r"^sources +3$", out, re.M)
    ov = json.loads(run("overview", "--db", filled, "--json")[1])
    assert (ov["events_total"], ov["detections_total"], ov["source_count"]) == (
        7,
        3 * 3 + 3 * 1 + 4,
        3,
    )
    recent = json.loads(run("overview", "--db", filled, "--json", "--since", "1h")[1])
    assert recent["events_total"] == 6


def test_classes_and_sources(filled: str) -> None:
    code, out, _ = run("classes", "--db", filled, "--json")
    assert code == 0
    assert json.loads(out) == [
        {"class_name": "car", "detections": 6},  # a tie is broken by name
        {"class_name": "person", "detections": 6},
        {"class_name": "bus", "detections": 4},
    ]
    code, out, _ = run("sources", "--db", filled)
    assert code == 0
    rows = out.splitlines()[2:]
    assert rows[0].startswith("cam-old") and "40 d" in rows[0]  # the silent one first


def test_prune_older_than_30d(filled: str) -> None:
    code, out, _ = run("prune", "--older-than", "30d", "--db", filled)
    assert code == 0 and out.startswith("deleted 1 events before")
    assert json.loads(run("overview", "--db", filled, "--json")[1])["events_total"] == 6


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["prune"], 2, "give --older-than (e.g. 30d) or set stats.retention_days"),
        (["prune", "--older-than", "soon"], 2, "--older-than: expected a duration like 30d"),
        (["recent", "--since", "last tuesday"], 2, "--since: expected an ISO 8601 time"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    filled: str, args: list[str], code: int, message: str
) -> None:
    exit_code, _, err = run(*args, "--db", filled)
    assert exit_code == code
    assert message in err


def test_a_missing_sqlite_file_is_an_error_not_a_new_database(tmp_path: Path) -> None:
    code, _, err = run("overview", "--db", str(tmp_path / "nope.db"))
    assert code == 1
    assert "no statistics database at" in err
    assert not (tmp_path / "nope.db").exists()


def test_a_dsn_password_is_never_printed() -> None:
    dsn = "postgresql://stats:hunter2-secret@127.0.0.1:1/stats"
    code, out, err = run("overview", "--db", dsn)
    assert code == 1
    assert "PostgreSQL postgresql://stats:***@127.0.0.1:1/stats" in err
    assert "hunter2-secret" not in out + err


def test_db_comes_from_the_config_file(filled: str, tmp_path: Path) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(f"[stats]\ndb = {json.dumps(filled)}\n")
    code, out, _ = run("overview", "--config", str(config), "--json")
    assert code == 0 and json.loads(out)["events_total"] == 7
