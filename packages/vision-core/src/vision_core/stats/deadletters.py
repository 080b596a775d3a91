"""Dead letters, as the `dead-letters` command of vision-edge and vision-server shows them.

Events the statistics service refused for good (see `vision_core.stats.sender`) wait in
their outbox's dead-letter table. `dead_letters_command(outboxes)` is the click command both
CLIs install: it lists them, exports them as JSONL (the event, the status, the reason),
puts them back in the queue once the service is fixed (`--retry`), or deletes them
(`--purge`), across every outbox file `outboxes(cfg)` names.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from vision_core.config import PipelineConfig
from vision_core.stats.outbox import DeadLetter, Outbox

__all__ = ["dead_letter_record", "dead_letters_command"]


def dead_letter_record(dead: DeadLetter, outbox: Path | None = None) -> dict[str, Any]:
    """A dead letter as one JSON-able record (its event decoded when it is JSON)."""
    try:
        event: Any = json.loads(dead.payload)
    except ValueError:
        event = dead.payload.decode("utf-8", "replace")
    record: dict[str, Any] = {
        "id": dead.id,
        "event_id": dead.event_id,
        "kind": dead.kind,
        "status": dead.status,
        "reason": dead.reason,
        "failed_at": dead.failed_at,
        "event": event,
    }
    if outbox is not None:
        record["outbox"] = str(outbox)
    return record


def dead_letters_command(outboxes: Callable[[PipelineConfig], list[Path]]) -> click.Command:
    """The `dead-letters` command over the outbox files `outboxes(cfg)` names."""
    from vision_core.cli import config_options, echo, echo_json, load_cli_config
    from vision_core.fsutil import atomic_write_text

    @click.command("dead-letters")
    @config_options
    @click.option(
        "--export",
        "export_path",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Write them as JSONL (event, status, reason) to this file.",
    )
    @click.option("--retry", is_flag=True, help="Put them back in the queue (service fixed).")
    @click.option("--purge", is_flag=True, help="Delete them for good.")
    @click.option("--json", "as_json", is_flag=True, help="List them as JSON.")
    def dead_letters(
        config_path: Path | None,
        overrides: tuple[str, ...],
        export_path: Path | None,
        retry: bool,
        purge: bool,
        as_json: bool,
    ) -> None:
        """Events the statistics service refused for good: list, export, retry or purge.

        They left the queue so that the events behind them were delivered; nothing else is
        lost. Export first, then --retry once the service accepts them, or --purge.
        """
        if retry and purge:
            raise click.UsageError("--retry and --purge exclude each other")
        cfg = load_cli_config(config_path, overrides)
        paths = [p for p in outboxes(cfg) if p.is_file()]
        records: list[dict[str, Any]] = []
        for path in paths:
            with Outbox(path, max_events=cfg.deploy.stats.outbox_max_events) as outbox:
                records += [dead_letter_record(d, path) for d in outbox.dead_letters()]
        if export_path is not None:  # written before anything is moved or deleted
            lines = "".join(json.dumps(r, default=str) + "\n" for r in records)
            atomic_write_text(export_path, lines)
            echo(f"exported {len(records)} dead letter(s) to {export_path}", err=True)
        moved = 0
        if retry or purge:
            ids: dict[str, list[int]] = {}
            for r in records:  # exactly what was listed (and exported), nothing newer
                ids.setdefault(r["outbox"], []).append(r["id"])
            for path in paths:
                with Outbox(path, max_events=cfg.deploy.stats.outbox_max_events) as outbox:
                    chosen = ids.get(str(path), [])
                    moved += outbox.requeue_dead(chosen) if retry else outbox.purge_dead(chosen)
        if retry:
            echo(f"{moved} dead letter(s) back in the queue; the next run sends them", err=True)
            return
        if purge:
            echo(f"{moved} dead letter(s) deleted", err=True)
            return
        if as_json:
            echo_json(records)
        elif export_path is None:
            if not records:
                echo("no dead letters")
            for r in records:
                echo(f"{r['id']:>6}  {r['kind']:<8} {r['event_id']}  {r['status']}  {r['reason']}")

    return dead_letters
