"""One MQTT connection (paho-mqtt 2, MQTT 5) driven by its owner's thread: `BrokerLink`.

The stats publisher (`vision_core.stats.mqtt`) and the vision-stats ingest workers both
talk to the broker through it, so the connection settings (`deploy.stats.mqtt`,
`stats.mqtt`: host, port, TLS, user name, password from an environment variable), the
reconnect policy and the errors are written once.

- paho's external-loop API (`loop_read` / `loop_write` / `loop_misc` on our own
  `select`): every paho call and callback happens on the thread that calls `run_once`, so
  the owner's state needs no locks. Another thread hands work to that thread with
  `call_soon(fn)` (paho's writes are not safe to call from a second thread in this mode).
- Reconnects wait with `vision_core.net.Backoff` (capped exponential, equal jitter): a
  fleet that lost its broker at the same moment does not come back in one wave.
- MQTT 5: PUBACK reason codes (a refused or unroutable message is known, not assumed
  delivered), session expiry and Receive Maximum for the ingest's persistent sessions.
- The password is read by the caller from the variable `password_env` names
  (`resolve_secret`, registered for scrubbing) and handed to paho only; it is in no log line.

paho-mqtt is the `mqtt` extra: importing this module without it raises
MissingDependencyError naming `pip install "vision-core[mqtt]"`.
"""

from __future__ import annotations

import contextlib
import random
import select
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vision_core.errors import ConfigError, MissingDependencyError
from vision_core.logging import StructuredLogger
from vision_core.net.retry import Backoff
from vision_core.secrets import Secret, scrub

try:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode
except ImportError as exc:  # pragma: no cover - exercised by the packaging test
    raise MissingDependencyError(
        "paho", "vision-core[mqtt]", "MQTT (deploy.stats.transport = mqtt, ingest-mqtt)"
    ) from exc

if TYPE_CHECKING:
    from vision_core.config.schema import MqttBroker

__all__ = [
    "BrokerLink",
    "ReasonCode",
    "check_topic_level",
    "check_topic_prefix",
    "describe_broker",
]

_READ_PACKETS = 64  # packets handled per readable socket before the owner's work runs again


def check_topic_level(value: str, what: str) -> str:
    """`value` as one MQTT topic level (a device id, a group): non-empty, no / + # or NUL."""
    if not value or any(c in value for c in "/+#\x00"):
        raise ConfigError(f"{what}: {value!r} cannot be an MQTT topic level (no / + # or NUL)")
    return value


def check_topic_prefix(value: str, what: str) -> str:
    """A topic prefix: one or more levels, no wildcards, no empty level, no leading $."""
    if not value or value.startswith("$") or any(c in value for c in "+#\x00"):
        raise ConfigError(f"{what}: {value!r} is not a topic prefix (no + # $ or NUL)")
    if any(not level for level in value.split("/")):
        raise ConfigError(f"{what}: {value!r} has an empty topic level")
    return value


def describe_broker(section: MqttBroker) -> str:
    """`mqtts://host:port` (no user name, no password): for logs and status pages."""
    return f"{'mqtts' if section.tls else 'mqtt'}://{section.host}:{section.port}"


class BrokerLink:
    """One paho client and its reconnect loop, run by the owner's thread (module docstring)."""

    def __init__(
        self,
        section: MqttBroker,
        *,
        key_path: str,
        client_id: str,
        password: Secret | str = "",
        clean_start: bool = True,
        session_expiry_sec: int = 0,
        receive_maximum: int = 0,
        manual_ack: bool = False,
        max_inflight: int = 20,
        will: tuple[str, bytes, int] | None = None,
        max_backoff_sec: float = 30.0,
        base_backoff_sec: float = 0.5,
        connect_timeout_sec: float = 5.0,
        logger: StructuredLogger | None = None,
        rng: random.Random | None = None,
        on_up: Callable[[bool], None] | None = None,
        on_down: Callable[[str], None] | None = None,
    ) -> None:
        self.section = section
        self.key_path = key_path
        self.url = describe_broker(section)
        self.client_id = client_id
        self.log = logger or StructuredLogger(None)
        self._clean_start = clean_start
        self._on_up = on_up
        self._on_down = on_down
        self._backoff = Backoff(base_backoff_sec, max_backoff_sec, rng=rng)
        self._next_connect_at = 0.0
        self._calls: deque[Callable[[], object]] = deque()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._started = False  # connect() succeeded once: later attempts reconnect()
        self._tls = False
        self._last_logged: str | None = None
        self._last_log_at = 0.0
        self.connected = False  # CONNACK accepted, not lost since
        self.connects_total = 0
        self.disconnects_total = 0
        self.last_error: str | None = None

        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
            manual_ack=manual_ack,
        )
        client.max_inflight_messages_set(max_inflight)
        client.max_queued_messages_set(0)
        client.connect_timeout = connect_timeout_sec
        client.suppress_exceptions = False
        password_text = password.reveal() if isinstance(password, Secret) else password
        if section.username:
            client.username_pw_set(section.username, password_text or None)
        elif password_text:
            raise ConfigError(
                f"{key_path}.password_env: a password is set but {key_path}.username is empty"
            )
        if section.tls:
            self._set_tls(client)
        elif section.ca_file or section.cert_file:
            raise ConfigError(f"{key_path}.tls: ca_file/cert_file are set but tls is false")
        if will is not None:
            topic, payload, qos = will
            client.will_set(topic, payload, qos=qos, retain=True)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(session_expiry_sec)
        if receive_maximum:
            props.ReceiveMaximum = int(receive_maximum)
        self._connect_props = props
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        self.client = client

    def _set_tls(self, client: paho.Client) -> None:
        s = self.section
        for key in ("ca_file", "cert_file", "key_file"):
            value = getattr(s, key)
            if value and not Path(value).is_file():
                raise ConfigError(f"{self.key_path}.{key}: {value} is not a file")
        if s.key_file and not s.cert_file:
            raise ConfigError(f"{self.key_path}.key_file is set without cert_file")
        try:
            client.tls_set(
                ca_certs=s.ca_file or None,
                certfile=s.cert_file or None,
                keyfile=s.key_file or None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ConfigError(f"{self.key_path}: cannot load the TLS files: {exc}") from exc
        self._tls = True

    # -- what the owner calls (from its own thread, except call_soon and wake) -------------

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Run `fn` on the link's thread at its next turn (thread-safe)."""
        self._calls.append(fn)
        self.wake()

    def wake(self) -> None:
        """Cut the link's wait short (thread-safe)."""
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    @property
    def consecutive_failures(self) -> int:
        return self._backoff.attempts

    @property
    def next_attempt_at(self) -> float:
        """time.monotonic() of the next connection attempt while backing off (0: none)."""
        return 0.0 if self.connected else self._next_connect_at

    def retry_now(self) -> None:
        """Cut a reconnect backoff short (a flush wants one immediate try)."""
        self._next_connect_at = 0.0

    def run_once(self, timeout: float) -> None:
        """Connect when due, then wait up to `timeout` s for the socket or a wake-up, and
        let paho read, write and keep the link alive (callbacks run here)."""
        self._run_calls()
        sock = self.client.socket()
        if sock is None:
            now = time.monotonic()
            if now >= self._next_connect_at:
                self._connect()
                sock = self.client.socket()
            if sock is None:
                wait = max(0.0, min(timeout, self._next_connect_at - time.monotonic()))
                self._wait([self._wake_r], [], wait)
                self._run_calls()
                return
        pending = self._tls and isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        want_write = [sock] if self.client.want_write() else []
        readable, writable = self._wait(
            [sock, self._wake_r], want_write, 0.0 if pending else timeout
        )
        self._run_calls()
        if pending or sock in readable:
            self.client.loop_read(_READ_PACKETS)
        if self.client.socket() is not None and (sock in writable or self.client.want_write()):
            self.client.loop_write()
        if self.client.socket() is not None:
            self.client.loop_misc()

    def disconnect(self, timeout: float = 2.0) -> None:
        """Send DISCONNECT (the will is not published) and close the socket."""
        if self.client.socket() is not None:
            with contextlib.suppress(Exception):
                self.client.disconnect()
                deadline = time.monotonic() + timeout
                while self.client.socket() is not None and time.monotonic() < deadline:
                    if self.client.want_write():
                        self.client.loop_write()
                    self._wait([self.client.socket() or self._wake_r], [], 0.05)
                    if self.client.socket() is not None:
                        self.client.loop_read()
        self.connected = False

    def close(self) -> None:
        self.disconnect()
        with contextlib.suppress(Exception):
            self.client._sock_close()
        for s in (self._wake_r, self._wake_w):
            s.close()

    # -- inside -----------------------------------------------------------------------------

    def _wait(
        self, rlist: list[Any], wlist: list[Any], timeout: float
    ) -> tuple[list[Any], list[Any]]:
        try:
            readable, writable, _ = select.select(rlist, wlist, [], max(0.0, timeout))
        except (OSError, ValueError):  # the socket closed under us
            return [], []
        if self._wake_r in readable:
            with contextlib.suppress(OSError):
                while self._wake_r.recv(4096):
                    pass
        return readable, writable

    def _run_calls(self) -> None:
        while self._calls:
            fn = self._calls.popleft()
            fn()

    def _connect(self) -> None:
        s = self.section
        try:
            if self._started:
                self.client.reconnect()
            else:
                self.client.connect(
                    s.host,
                    s.port,
                    keepalive=s.keepalive_sec,
                    clean_start=self._clean_start,
                    properties=self._connect_props,
                )
                self._started = True
        except (OSError, ssl.SSLError, ValueError) as exc:
            self._failed(f"cannot connect to {self.url}: {type(exc).__name__}: {exc}")

    def _failed(self, message: str) -> None:
        message = scrub(message)
        delay = self._backoff.next()
        self._next_connect_at = time.monotonic() + delay
        self.last_error = message
        now = time.monotonic()
        if message != self._last_logged or now - self._last_log_at >= 60.0:
            self.log.warn(
                "mqtt.unreachable",
                f"{message}; next try in {delay:.1f}s",
                broker=self.url,
                failures=self._backoff.attempts,
            )
            self._last_logged, self._last_log_at = message, now
        if self._on_down is not None:
            self._on_down(message)

    def _connected(
        self,
        _client: paho.Client,
        _userdata: object,
        flags: Any,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        if reason.is_failure:
            hint = ""
            if reason.value in (0x86, 0x87, 0x8C):
                hint = (
                    f": check {self.key_path}.username and the variable named by "
                    f"{self.key_path}.password_env"
                )
            elif reason.value == 0x85:
                hint = f": the client id {self.client_id!r} was refused ({self.key_path}.client_id)"
            self._failed(f"{self.url} refused the connection ({reason}){hint}")
            return
        self.connected = True
        self.connects_total += 1
        if self._backoff.attempts:
            self.log.info(
                "mqtt.connected",
                f"connected to {self.url} as {self.client_id} after "
                f"{self._backoff.attempts} failed attempt(s)",
                broker=self.url,
            )
        self._backoff.reset()
        self._last_logged = None
        self.last_error = None
        if self._on_up is not None:
            self._on_up(bool(getattr(flags, "session_present", False)))

    def _disconnected(
        self,
        _client: paho.Client,
        _userdata: object,
        _flags: Any,
        reason: ReasonCode,
        _props: Properties | None,
    ) -> None:
        was = self.connected
        self.connected = False
        if was:
            self.disconnects_total += 1
            if reason.value != 0:  # not our own DISCONNECT
                self._failed(f"lost the connection to {self.url} ({reason})")
        elif self._next_connect_at <= time.monotonic():
            self._failed(f"{self.url} closed the connection before accepting it ({reason})")
