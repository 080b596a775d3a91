"""`vision-stats ingest-mqtt`: parse, load the config, run one ingest worker. No logic here."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import click

from vision_core.cli import config_options, fail, load_cli_config
from vision_core.errors import ConfigError, VisionError
from vision_core.logging import StructuredLogger
from vision_stats.errors import StatsError


@click.command("ingest-mqtt")
@click.option(
    "--db",
    default=None,
    metavar="PATH|DSN",
    help="SQLite file or postgresql:// DSN (default: stats.db of the config).",
)
@click.option(
    "--client-id",
    default=None,
    help="This worker's MQTT client id (default: stats.mqtt.client_id); one per worker, "
    "the same after a restart (its persistent session holds its unacked messages).",
)
@click.option(
    "--group", default=None, help="Shared-subscription group (default: stats.mqtt.group)."
)
@config_options
def ingest_mqtt(
    db: str | None,
    client_id: str | None,
    group: str | None,
    config_path: Path | None,
    overrides: tuple[str, ...],
) -> None:
    """Store the events devices publish to the MQTT broker (stats.mqtt), in batches;
    run several workers of one group to split the stream. SIGINT/SIGTERM stop it after
    the batch in hand."""
    from vision_stats.ingest_mqtt import IngestSettings, MqttIngest
    from vision_stats.store import open_store

    cfg = load_cli_config(config_path, overrides)
    try:
        settings = IngestSettings.from_config(cfg, db=db, client_id=client_id, group=group)
    except ConfigError as exc:
        fail(str(exc), code=2)
    name = settings.client_id.replace("/", "_")
    log = StructuredLogger(
        Path(cfg.run.workdir) / "logs" / f"ingest-mqtt-{name}.jsonl",
        cfg.run.log_level,
        console=True,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("ingest.stopping", f"{signal.Signals(signum).name}: finishing the batch in hand")
        stop.set()
        signal.signal(signum, signal.SIG_DFL)  # a second one ends it at once

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        store = open_store(settings.db, pool_size=2)
        try:
            MqttIngest(store, settings, logger=log).run(stop)
        finally:
            store.close()
    except ConfigError as exc:
        fail(str(exc), code=2)
    except (StatsError, VisionError) as exc:
        fail(str(exc))
    finally:
        log.close()
