"""A fleet over MQTT: many devices -> Mosquitto -> N `vision-stats ingest-mqtt` -> PostgreSQL.

    uv run --locked python benchmarks/bench_fleet.py                      # 1000 devices, 60 s
    uv run --locked python benchmarks/bench_fleet.py --devices 200 --seconds 10

What runs, all on this machine:
  - a Mosquitto of its own on a free port, configured as the root README says
    (persistence, no queue limit), so its memory is measured and nobody else's broker
    is disturbed;
  - `--workers` ingest workers (the real console script) on a fresh PostgreSQL schema;
  - `--simulators` processes, each holding devices/simulators MQTT connections (paho,
    MQTT 5, QoS 1, one selector loop for all of them). A device publishes what the
    MqttPublisher publishes: a JSON array of StatsEvents on <prefix>/<device>/events/frame,
    `--events-per-message` events every events-per-message/events-per-sec seconds, ts_utc
    the capture time; an event counts as sent when the broker has PUBACKed its message.

What it prints: events/s published and stored, the end-to-end delay p50/p99 (capture to
COMMIT, per worker), peak RSS of the broker and of each worker, CPU seconds of each part
per 1,000 events (the bottleneck is the part nearest to one core), the load average
before and after, and the check: every device's events in the store exactly once (count,
distinct event ids, no gap in frame_index).
"""

from __future__ import annotations

import argparse
import getpass
import heapq
import json
import os
import platform
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec

PG_DSN = os.environ.get("VISION_STATS_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
BROKER_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
user {user}
persistence true
persistence_location {data}/
autosave_interval 60
max_queued_messages 0
max_inflight_messages 0
log_dest file {data}/mosquitto.log
"""
BIN = Path(sys.executable).parent


class BrokerLike(Protocol):
    host: str
    port: int
    proc: subprocess.Popen[bytes] | None


@dataclass
class FleetConfig:
    devices: int = 1000
    seconds: float = 60.0
    events_per_sec: float = 20.0  # per device
    events_per_message: int = 10
    simulators: int = 2
    workers: int = 2
    batch_size: int = 10_000  # stats.mqtt.batch_size of the workers
    receive_maximum: int = 5000
    dsn: str = PG_DSN


@dataclass
class FleetReport:
    config: dict[str, Any]
    published: int = 0  # events PUBACKed by the broker
    messages: int = 0
    stored: int = 0
    distinct: int = 0
    gaps: int = 0  # devices whose frame_index has holes or whose count differs
    missing_devices: int = 0
    publish_sec: float = 0.0
    publish_rate: float = 0.0
    store_rate: float = 0.0  # stored / (last COMMIT - first publish)
    steady_store_rate: float = 0.0  # stored during the publishing window / its length
    catch_up_sec: float = 0.0  # after the last publish, until everything was stored
    worker_figures: list[dict[str, Any]] = field(default_factory=list)
    rss_mb: dict[str, float] = field(default_factory=dict)
    cpu_sec: dict[str, float] = field(default_factory=dict)
    wait_sec: dict[str, float] = field(default_factory=dict)  # runnable, no CPU free
    load_before: str = ""
    load_after: str = ""


# -- the device simulator (a subprocess: `bench_fleet.py --simulate ...`) ------------------


class _Event(msgspec.Struct):
    event_id: str
    ts_utc: datetime
    source_id: str
    mode: str
    frame_index: int
    latency_ms: float
    detections_total: int
    counts_by_class: dict[str, int]
    model: str


def simulate(args: argparse.Namespace) -> None:
    """Hold `--count` device connections; publish until `--until`; print one JSON line."""
    import paho.mqtt.client as mqtt

    enc = msgspec.json.Encoder()
    interval = args.events_per_message / args.events_per_sec
    names = [f"d{args.first + i:05d}" for i in range(args.count)]
    sel = selectors.DefaultSelector()
    clients: list[mqtt.Client] = []
    inflight: list[dict[int, int]] = [{} for _ in names]
    acked = [0] * len(names)
    seq = [0] * len(names)
    messages = 0

    def on_publish(_c: Any, index: int, mid: int, reason: Any, _p: Any) -> None:
        n = inflight[index].pop(mid, 0)
        if not reason.is_failure and reason.value != 0x10:
            acked[index] += n
        else:  # a refusal: these frame indices are missing: the check will say so
            sys.stderr.write(f"refused {names[index]} mid {mid}: {reason}\n")

    for index, name in enumerate(names):
        c = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"{args.prefix}-{name}",
            protocol=mqtt.MQTTv5,
            userdata=index,
        )
        c.max_inflight_messages_set(100)
        c.on_publish = on_publish
        c.will_set(f"{args.prefix}/{name}/status", b"offline", qos=1, retain=True)
        c.connect("127.0.0.1", args.port, keepalive=60)
        clients.append(c)
        sock = c.socket()
        assert sock is not None
        sel.register(sock, selectors.EVENT_READ, index)
    deadline = time.time() + 60
    while any(not c.is_connected() for c in clients) and time.time() < deadline:
        for key, _ in sel.select(0.05):
            clients[key.data].loop_read(10)
    for c, name in zip(clients, names, strict=True):
        c.publish(f"{args.prefix}/{name}/status", b"online", qos=1, retain=True)
    print(json.dumps({"event": "connected", "devices": len(clients)}), flush=True)
    start_file = Path(args.start_file)
    while not start_file.exists():  # the harness writes it once every simulator is connected
        pump_wait = 0.02
        for key, _ in sel.select(pump_wait):
            clients[key.data].loop_read(10)
    start = max(time.time(), float(start_file.read_text()))
    until = start + args.seconds
    # the first message of each device at its own phase, then every `interval`
    due = [(start + interval * (i / len(names)), i) for i in range(len(names))]
    heapq.heapify(due)
    cpu0 = time.process_time()
    last_misc = time.monotonic()

    def pump(timeout: float) -> None:
        for key, mask in sel.select(timeout):
            c = clients[key.data]
            if mask & selectors.EVENT_READ:
                c.loop_read(10)
            if mask & selectors.EVENT_WRITE or c.want_write():
                c.loop_write()

    wanting: set[int] = set()
    while True:
        now = time.time()
        if now >= until:
            break
        while due and due[0][0] <= now:
            at, i = heapq.heappop(due)
            ts = datetime.now(UTC)
            ms = int(now * 1000)
            events = []
            for _ in range(args.events_per_message):
                k = seq[i]
                seq[i] += 1
                events.append(
                    _Event(
                        f"{ms:012x}{args.first + i:06x}{k:014x}",
                        ts,
                        names[i],
                        "local",
                        k,
                        3.5,
                        2,
                        {"car": 1, "person": 1},
                        "bench",
                    )
                )
            info = clients[i].publish(
                f"{args.prefix}/{names[i]}/events/frame", enc.encode(events), qos=1
            )
            inflight[i][info.mid] = len(events)
            messages += 1
            if clients[i].want_write() and i not in wanting:
                wanting.add(i)
                sock = clients[i].socket()
                if sock is not None:
                    sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
            heapq.heappush(due, (at + interval, i))
        for i in list(wanting):
            if not clients[i].want_write():
                wanting.discard(i)
                sock = clients[i].socket()
                if sock is not None:
                    sel.modify(sock, selectors.EVENT_READ, i)
        pump(max(0.0, min(0.01, (due[0][0] - time.time()) if due else 0.01)))
        if time.monotonic() - last_misc > 1.0:
            for c in clients:
                c.loop_misc()
            last_misc = time.monotonic()
    # wait for the last PUBACKs
    deadline = time.time() + 60
    while any(inflight) and time.time() < deadline:
        for c in clients:
            if c.want_write():
                c.loop_write()
        pump(0.05)
    for c, name in zip(clients, names, strict=True):
        c.publish(f"{args.prefix}/{name}/status", b"offline", qos=0, retain=True)
        c.disconnect()
        c.loop_write()
    print(
        json.dumps(
            {
                "event": "done",
                "acked": dict(zip(names, acked, strict=True)),
                "published": sum(seq),
                "messages": messages,
                "unacked_messages": sum(len(x) for x in inflight),
                "cpu_sec": round(time.process_time() - cpu0, 3),
            }
        ),
        flush=True,
    )


# -- the harness ---------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _OwnBroker:
    host: str
    port: int
    proc: subprocess.Popen[bytes] | None


def start_broker(workdir: Path) -> _OwnBroker:
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    data = workdir / "mosquitto"
    data.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(BROKER_CONF.format(port=port, data=data, user=getpass.getuser()))
    proc = subprocess.Popen([binary, "-c", str(conf)])
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return _OwnBroker("127.0.0.1", port, proc)
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("mosquitto did not start") from None
            time.sleep(0.05)


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _sched(pid: int) -> tuple[float, float]:
    """(CPU seconds, seconds runnable but waiting for a CPU) of a process, all its threads."""
    cpu = wait = 0.0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            on_cpu, queued, _ = (task / "schedstat").read_text().split()
            cpu += int(on_cpu) / 1e9
            wait += int(queued) / 1e9
    except (OSError, ValueError):
        pass
    return cpu, wait


def _minus(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return a[0] - b[0], a[1] - b[1]


def _backends(conn: Any, app: str) -> list[int]:
    """The PostgreSQL backends serving the ingest workers (by application_name)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)
    ).fetchall()
    return [int(r[0]) for r in rows]


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cpu_model() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (ln.split(":", 1)[1].strip() for ln in info.splitlines() if "model name" in ln), ""
    )
    flags = next(
        (ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), []
    )
    isa = [f for f in ("sse4_2", "avx", "avx2", "avx512f", "avx512_vnni", "neon") if f in flags]
    return f"{model or platform.processor()} x{os.cpu_count()} ({' '.join(isa)})"


def _schema(dsn: str) -> tuple[str, str]:
    import psycopg
    from psycopg.conninfo import make_conninfo

    schema = f"fleet_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema, make_conninfo(dsn, options=f"-csearch_path={schema}", application_name=schema)


def _drop(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _stored(conn: Any) -> int:
    row = conn.execute("SELECT COALESCE(SUM(events), 0) FROM source_totals").fetchone()
    return int(row[0])


def run_fleet(
    cfg: FleetConfig, *, broker: BrokerLike | None = None, workdir: Path | None = None
) -> FleetReport:
    """Run the fleet once (see the module docstring); the broker is started unless given."""
    import psycopg

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, cfg.devices * 2 + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    tmp = Path(tempfile.mkdtemp(prefix="fleet-")) if workdir is None else workdir
    own = broker is None
    the_broker: BrokerLike = start_broker(tmp) if broker is None else broker
    prefix = f"fleet{uuid.uuid4().hex[:6]}"
    schema, dsn = _schema(cfg.dsn)
    report = FleetReport(config=asdict(cfg) | {"dsn": "(fresh schema)"})
    workers: list[subprocess.Popen[bytes]] = []
    sims: list[subprocess.Popen[str]] = []
    try:
        from vision_stats.store import open_store

        open_store(dsn).close()  # migrate once, before the workers start
        for k in range(cfg.workers):
            wd = tmp / f"w{k}"
            wd.mkdir(parents=True, exist_ok=True)
            argv = [
                str(BIN / "vision-stats"), "ingest-mqtt", "--db", dsn,
                "--client-id", f"{prefix}-w{k}",
                "--set", f"run.workdir={wd}",
                "--set", f"stats.mqtt.port={the_broker.port}",
                "--set", f"stats.mqtt.topic_prefix={prefix}",
                "--set", f"stats.mqtt.batch_size={cfg.batch_size}",
                "--set", f"stats.mqtt.receive_maximum={cfg.receive_maximum}",
                "--set", "stats.mqtt.session_expiry_sec=600",
            ]  # fmt: skip
            workers.append(
                subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        logs = [
            tmp / f"w{k}" / "logs" / f"ingest-mqtt-{prefix}-w{k}.jsonl" for k in range(cfg.workers)
        ]
        deadline = time.monotonic() + 60
        while not all(p.exists() and "ingest.connected" in p.read_text() for p in logs):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError("the ingest workers did not subscribe")
            time.sleep(0.1)
        per_sim = [
            cfg.devices // cfg.simulators + (1 if i < cfg.devices % cfg.simulators else 0)
            for i in range(cfg.simulators)
        ]
        first = 0
        for n in per_sim:
            sims.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--simulate",
                        "--port",
                        str(the_broker.port),
                        "--prefix",
                        prefix,
                        "--first",
                        str(first),
                        "--count",
                        str(n),
                        "--events-per-sec",
                        str(cfg.events_per_sec),
                        "--events-per-message",
                        str(cfg.events_per_message),
                        "--start-file",
                        str(tmp / "start"),
                        "--seconds",
                        str(cfg.seconds),
                    ],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
            first += n
        for s in sims:
            line = s.stdout.readline() if s.stdout else ""
            if '"connected"' not in line:
                raise RuntimeError(
                    f"a simulator did not connect: {line} {s.stderr.read() if s.stderr else ''}"
                )
        start_at = time.time() + 0.5
        (tmp / "start.tmp").write_text(str(start_at))
        (tmp / "start.tmp").replace(tmp / "start")  # whole, never half written
        report.load_before = _load()
        pids = {"broker": the_broker.proc.pid if the_broker.proc else 0} | {
            f"worker{k}": w.pid for k, w in enumerate(workers)
        }
        rss: dict[str, float] = dict.fromkeys(pids, 0.0)
        sched0 = {k: _sched(p) for k, p in pids.items()}
        with psycopg.connect(dsn, autocommit=True) as conn:
            pg0 = {b: _sched(b) for b in _backends(conn, schema)}
            at_start = _stored(conn)
            at_window_end = None
            while any(s.poll() is None for s in sims):
                for k, p in pids.items():
                    rss[k] = max(rss[k], _rss_mb(p))
                if at_window_end is None and time.time() >= start_at + cfg.seconds:
                    at_window_end = _stored(conn)
                time.sleep(0.5)
            if at_window_end is None:  # the simulators ended within a sample of the window
                at_window_end = _stored(conn)
            outs = [json.loads(s.stdout.read().strip().splitlines()[-1]) for s in sims if s.stdout]
            published_at = time.time()
            report.published = sum(o["published"] for o in outs)
            acked = {name: n for o in outs for name, n in o["acked"].items()}
            report.messages = sum(o["messages"] for o in outs)
            cpu_sims = sum(o["cpu_sec"] for o in outs)
            deadline = time.time() + 120
            last = -1
            last_change = time.time()
            while True:
                n = _stored(conn)
                for k, p in pids.items():
                    rss[k] = max(rss[k], _rss_mb(p))
                if n != last:
                    last, last_change = n, time.time()
                if n >= sum(acked.values()) or time.time() > deadline:
                    break
                time.sleep(0.2)
            report.catch_up_sec = round(max(0.0, last_change - published_at), 2)
            # CPU and run-queue wait during the run (the PostgreSQL backends: by pid)
            sched = {k: _minus(_sched(p), sched0[k]) for k, p in pids.items()}
            pg = [_minus(_sched(b), pg0.get(b, (0.0, 0.0))) for b in _backends(conn, schema)]
            sched["postgres"] = (sum(c for c, _ in pg), sum(w for _, w in pg))
            report.stored = n
            report.publish_sec = round(published_at - start_at, 2)
            report.publish_rate = round(sum(acked.values()) / cfg.seconds, 1)
            report.store_rate = round((n - at_start) / max(1e-9, last_change - start_at), 1)
            if at_window_end is not None:
                report.steady_store_rate = round((at_window_end - at_start) / cfg.seconds, 1)
            rows = conn.execute(
                "SELECT source_id, COUNT(*), COUNT(DISTINCT event_id), MIN(frame_index),"
                " MAX(frame_index) FROM events GROUP BY source_id"
            ).fetchall()
            report.distinct = sum(int(r[2]) for r in rows)
            seen = {str(r[0]): r for r in rows}
            report.missing_devices = sum(1 for d, c in acked.items() if c and d not in seen)
            report.gaps = sum(
                1
                for d, c in acked.items()
                if d in seen
                and not (seen[d][1] == seen[d][2] == c and seen[d][3] == 0 and seen[d][4] == c - 1)
            )
            report.published = sum(acked.values())
        report.load_after = _load()
        report.rss_mb = {k: round(v, 1) for k, v in rss.items()}
        report.cpu_sec = {k: round(c, 2) for k, (c, _) in sched.items()}
        report.cpu_sec["simulators"] = round(cpu_sims, 2)
        report.wait_sec = {k: round(w, 2) for k, (_, w) in sched.items()}
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(30)
            except subprocess.TimeoutExpired:
                w.kill()
        for s in sims:
            if s.poll() is None:
                s.kill()
                s.wait()
        if own and the_broker.proc is not None:
            the_broker.proc.terminate()
            the_broker.proc.wait(20)
        _drop(cfg.dsn, schema)
    for k in range(cfg.workers):
        log = tmp / f"w{k}" / "logs" / f"ingest-mqtt-{prefix}-w{k}.jsonl"
        summary = [
            json.loads(ln) for ln in log.read_text().splitlines() if '"ingest.summary"' in ln
        ]
        if summary:
            s = summary[-1]
            report.worker_figures.append(
                {
                    k2: s.get(k2)
                    for k2 in (
                        "messages_total",
                        "stored_total",
                        "duplicates_total",
                        "malformed_total",
                        "batches_total",
                        "delay_ms_p50",
                        "delay_ms_p99",
                        "decode_sec",
                        "store_sec",
                    )
                }
            )
    if workdir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return report


def print_report(r: FleetReport) -> None:
    c = r.config
    events = max(1, r.stored)
    print(f"\ncpu: {cpu_model()}   python {platform.python_version()}")
    print(
        f"fleet: {c['devices']} devices x {c['events_per_sec']:g} events/s "
        f"({c['events_per_message']} per message), {c['seconds']:g} s, {c['workers']} ingest "
        f"workers on PostgreSQL, {c['simulators']} simulator processes"
    )
    print(f"load average (uptime) before: {r.load_before}   after: {r.load_after}\n")
    rows = [
        ("events published (PUBACKed)", f"{r.published}", f"{r.messages} messages"),
        (
            "publish rate",
            f"{r.publish_rate:.0f} events/s",
            f"offered: {c['devices'] * c['events_per_sec']:.0f}/s",
        ),
        ("stored (rows)", f"{r.stored}", f"distinct event ids {r.distinct}"),
        (
            "store rate, publishing window",
            f"{r.steady_store_rate:.0f} events/s",
            "rows stored while devices published / window",
        ),
        (
            "store rate, to the last COMMIT",
            f"{r.store_rate:.0f} events/s",
            f"catch-up after the last publish {r.catch_up_sec} s",
        ),
        (
            "lost / duplicated / gaps",
            f"{r.published - r.distinct} / {r.stored - r.distinct} / {r.gaps}",
            "devices with a hole or a wrong count",
        ),
    ]
    for k, w in enumerate(r.worker_figures):
        rows.append(
            (
                f"worker {k}: delay p50 / p99",
                f"{w['delay_ms_p50']} / {w['delay_ms_p99']} ms",
                f"{w['stored_total']} stored, {w['duplicates_total']} dups, {w['batches_total']} batches, "
                f"decode {w['decode_sec']} s, store {w['store_sec']} s",
            )
        )
    for k, v in r.rss_mb.items():
        rows.append((f"peak RSS {k}", f"{v:.1f} MB", ""))
    stack = 0.0
    for k, v in r.cpu_sec.items():
        wait = r.wait_sec.get(k)
        if k != "simulators":
            stack += v
        rows.append(
            (
                f"CPU {k}",
                f"{v:.1f} s",
                f"{1e6 * v / events:.1f} ms per 1k events"
                + (f", waited {wait:.1f} s for a CPU" if wait is not None else ""),
            )
        )
    if stack:
        rows.append(
            (
                "2 idle cores would carry",
                f"{2000 * events / (1e3 * stack):.0f} events/s",
                "estimate: 2 cores / CPU per event of broker + workers + postgres",
            )
        )
    width = max(len(a) for a, _, _ in rows)
    for a, b, note in rows:
        print(f"  {a:<{width}}  {b:>22}  {note}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--events-per-sec", type=float, default=20.0, help="per device")
    ap.add_argument("--events-per-message", type=int, default=10)
    ap.add_argument("--simulators", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--dsn", default=PG_DSN)
    ap.add_argument("--json", action="store_true", help="also print the report as JSON")
    # the simulator subprocess
    ap.add_argument("--simulate", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--prefix", help=argparse.SUPPRESS)
    ap.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--start-file", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.simulate:
        simulate(args)
        return 0
    cfg = FleetConfig(
        devices=args.devices, seconds=args.seconds, events_per_sec=args.events_per_sec,
        events_per_message=args.events_per_message, simulators=args.simulators,
        workers=args.workers, batch_size=args.batch_size,
        dsn=args.dsn,
    )  # fmt: skip
    report = run_fleet(cfg)
    print_report(report)
    if args.json:
        print(json.dumps(asdict(report)))
    ok = report.stored == report.published == report.distinct and not report.gaps
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
