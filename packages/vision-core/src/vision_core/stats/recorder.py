"""`StatsRecorder`: the outbox + sender lifecycle of one producer of events.

An edge device and every vision-server worker record events the same way: open the
durable outbox, start a sender when `deploy.stats.endpoint` is set, `record` events (one
committed transaction per call, then a nudge to the sender), `snapshot` the figures for
metrics and status pages, and `close` with a bounded flush (`deploy.stats.flush_timeout_sec`;
what is not delivered stays on disk for the next start).

The transport is `deploy.stats.transport`: `http` (the `StatsSender`, to
`deploy.stats.endpoint`), `mqtt` (the `MqttPublisher`, to the broker of
`deploy.stats.mqtt`, on the same outbox), or `both`: the sender on the outbox and the
publisher on a second one beside it (`<name>.mqtt.db`), each event committed to both, so
each transport removes only what it delivered.

`record` never raises: an outbox that cannot be written (a full disk, a broken file) must
not stop detection on a device nor fail a frame request on a server. Each failure is counted
(`record_errors_total`, in every snapshot) and logged, at most once per
`ERROR_LOG_EVERY_SEC`, so an operator sees it without a flood.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vision_core.errors import ConfigError, MissingDependencyError
from vision_core.logging import StructuredLogger
from vision_core.secrets import Secret, resolve_secret
from vision_core.stats.outbox import Event, Outbox, OutboxError
from vision_core.stats.sender import StatsSender

if TYPE_CHECKING:
    from vision_core.config.schema import PipelineConfig, StatsSink
    from vision_core.stats.mqtt import MqttPublisher

__all__ = ["ERROR_LOG_EVERY_SEC", "StatsRecorder", "stats_api_key"]

ERROR_LOG_EVERY_SEC = 30.0


def stats_api_key(cfg: PipelineConfig, environ: Mapping[str, str] | None = None) -> Secret:
    """The statistics service's API key (from the variable `stats.api_key_env` names): what
    vision-stats requires and what every edge and server sends it."""
    return resolve_secret(cfg.stats.api_key_env, key_path="stats.api_key_env", environ=environ)


class StatsRecorder:
    """One producer's outbox and sender (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        sender: StatsSender | None,
        *,
        flush_timeout_sec: float,
        logger: StructuredLogger | None = None,
        publisher: MqttPublisher | None = None,
    ) -> None:
        self.outbox = outbox
        self.sender = sender
        self.publisher = publisher  # on `outbox`, or on its own when there is a sender too
        self.flush_timeout_sec = flush_timeout_sec
        self.log = logger or StructuredLogger(None)
        self.recorded_total = 0
        self.record_errors_total = 0
        self._last_error_log = 0.0
        self.flushed: bool | None = None  # set by close()
        self._final: dict[str, Any] | None = None  # the snapshot taken by close()

    @classmethod
    def open(
        cls,
        path: str | Path,
        sink: StatsSink,
        *,
        api_key: Secret | str = "",
        logger: StructuredLogger | None = None,
        name: str = "stats-sender",
        device_id: str = "",
        mqtt_extra: str = "vision-core[mqtt]",
        environ: Mapping[str, str] | None = None,
    ) -> StatsRecorder:
        """The outbox at `path` (cap and policy of `deploy.stats`), with a running sender
        when `deploy.stats.endpoint` is set (sending `api_key`, the statistics service's
        key: see `stats_api_key`) and/or a running MQTT publisher (`deploy.stats.transport`;
        `device_id` names the topics, `mqtt_extra` is what to install when paho is absent;
        the broker password is read from the variable `deploy.stats.mqtt.password_env`
        names, in `environ` or the process environment)."""
        publisher: MqttPublisher | None = None
        if sink.transport in ("mqtt", "both"):
            try:
                import vision_core.stats.mqtt  # noqa: F401 - paho-mqtt, the mqtt extra
            except MissingDependencyError:
                raise MissingDependencyError(
                    "paho", mqtt_extra, f"deploy.stats.transport = {sink.transport!r}"
                ) from None
        outbox = Outbox.from_config(path, sink, logger=logger)
        try:
            sender = None
            if sink.transport in ("mqtt", "both"):
                own = Path(path)
                box = outbox
                if sink.transport == "both":
                    box = Outbox.from_config(
                        own.with_name(f"{own.stem}.mqtt{own.suffix}"), sink, logger=logger
                    )
                try:
                    publisher = _publisher(box, sink, device_id, logger, name, environ)
                except BaseException:
                    if box is not outbox:
                        box.close()
                    raise
            if sink.endpoint and sink.transport in ("http", "both"):
                try:
                    sender = StatsSender(
                        outbox,
                        sink.endpoint,
                        api_key=api_key,
                        batch_size=sink.batch_size,
                        max_backoff_sec=sink.max_backoff_sec,
                        logger=logger,
                        name=name,
                    )
                except ValueError as exc:
                    raise ConfigError(f"deploy.stats.endpoint: {exc}") from exc
                sender.start()
        except BaseException:
            if publisher is not None:
                publisher.close()
                if publisher.outbox is not outbox:
                    publisher.outbox.close()
            outbox.close()
            raise
        if publisher is not None:
            publisher.start()
        return cls(
            outbox,
            sender,
            flush_timeout_sec=sink.flush_timeout_sec,
            logger=logger,
            publisher=publisher,
        )

    @property
    def path(self) -> Path:
        return self.outbox.path

    @property
    def delivering(self) -> bool:
        """A transport takes events away (False: they stay in the outbox)."""
        return self.sender is not None or self.publisher is not None

    @property
    def destination(self) -> str:
        """Where events go: the endpoint and/or the broker's topics ('' = kept locally)."""
        where = [self.sender.endpoint] if self.sender is not None else []
        if self.publisher is not None:
            where.append(self.publisher.endpoint + "/<kind>")
        return " + ".join(where)

    def _extra_outbox(self) -> Outbox | None:
        """The MQTT publisher's own outbox (transport `both`)."""
        if self.publisher is not None and self.publisher.outbox is not self.outbox:
            return self.publisher.outbox
        return None

    def record(self, events: Event | Iterable[Event]) -> int:
        """Commit events to the outbox and wake the sender; returns how many were stored.

        Never raises (see the module docstring): a failure counts in `record_errors_total`.
        """
        extra = self._extra_outbox()
        if extra is not None:
            events = list(events) if isinstance(events, Iterable) else [events]
        try:
            stored = self.outbox.put(events)
            if extra is not None:
                extra.put(events)
        except Exception as exc:
            self.record_errors_total += 1
            now = time.monotonic()
            if now - self._last_error_log >= ERROR_LOG_EVERY_SEC:
                self._last_error_log = now
                self.log.error(
                    "stats.record_failed",
                    f"events not recorded in {self.outbox.path} ({type(exc).__name__}: {exc}); "
                    f"{self.record_errors_total} failure(s) so far, detection goes on",
                    record_errors_total=self.record_errors_total,
                )
            return 0
        self.recorded_total += stored
        if self.sender is not None:
            self.sender.notify()
        if self.publisher is not None:
            self.publisher.notify()
        return stored

    def pending(self) -> int:
        """Events not yet delivered (by every transport)."""
        extra = self._extra_outbox()
        return self.outbox.pending() + (extra.pending() if extra is not None else 0)

    def snapshot(self) -> dict[str, Any]:
        """The figures of the outbox and the sender, for metrics, status and health pages
        (after `close`: as they were when it closed)."""
        if self._final is not None:
            return dict(self._final)
        snap: dict[str, Any] = {
            "path": str(self.outbox.path),
            "endpoint": self.destination,
            "recorded_total": self.recorded_total,
            "record_errors_total": self.record_errors_total,
        }
        with contextlib.suppress(OutboxError):
            snap.update(
                pending=self.outbox.pending(),
                dropped_total=self.outbox.dropped,
                dead_letters=self.outbox.dead_count(),
                last_error=self.outbox.last_error,
            )
        if self.sender is not None:
            snap.update(self.sender.snapshot())
        extra = self._extra_outbox()
        if self.publisher is not None and extra is None:
            snap.update(self.publisher.snapshot())
        elif self.publisher is not None and extra is not None:
            mqtt = self.publisher.snapshot()
            with contextlib.suppress(OutboxError):
                mqtt.update(path=str(extra.path), pending=extra.pending())
            snap["mqtt"] = mqtt
        if self.flushed is not None:
            snap["flushed"] = self.flushed
        return snap

    def close(self, flush_timeout_sec: float | None = None) -> bool:
        """Flush for up to `flush_timeout_sec` (default: the configured one), stop the
        sender, close the outbox. True when nothing is left pending. Idempotent."""
        if self._final is not None:
            return bool(self.flushed)
        timeout = self.flush_timeout_sec if flush_timeout_sec is None else flush_timeout_sec
        extra = self._extra_outbox()
        try:
            drained = False
            start = time.monotonic()
            if self.sender is not None:
                drained = self.sender.close(timeout)
            if self.publisher is not None:  # the rest of the flush time (both: in turn)
                self.publisher.close(max(0.0, timeout - (time.monotonic() - start)))
            with contextlib.suppress(OutboxError):
                drained = self.pending() == 0
            self.flushed = drained
            return drained
        finally:
            self.flushed = bool(self.flushed)
            self._final = self.snapshot()
            self.outbox.close()
            if extra is not None:
                extra.close()


def _publisher(
    outbox: Outbox,
    sink: StatsSink,
    device_id: str,
    logger: StructuredLogger | None,
    name: str,
    environ: Mapping[str, str] | None,
) -> MqttPublisher:
    from vision_core.stats.mqtt import MqttPublisher

    if not device_id:
        raise ConfigError(
            f"deploy.stats.transport = {sink.transport!r}: this producer has no device id "
            "to name its MQTT topics"
        )
    password = resolve_secret(
        sink.mqtt.password_env, key_path="deploy.stats.mqtt.password_env", environ=environ
    )
    return MqttPublisher(
        outbox,
        sink.mqtt,
        device_id=device_id,
        password=password,
        batch_size=sink.batch_size,
        max_backoff_sec=sink.max_backoff_sec,
        logger=logger,
        name=f"{name}-mqtt",
    )
