"""vision-server: throughput and latency over loopback vs the raw model, in one run.

    uv run python benchmarks/bench_server.py                      # yolo11n 320, ~6 minutes
    uv run python benchmarks/bench_server.py --model run/model.onnx --duration 15

Parts (each prints as it finishes, then one table):
  1. Ceiling: the raw model in this process on the same JPEG frames, decode included
     (cv2.imdecode, then `predict_batch`): batch 1 and batch max_batch one run at a time
     (ONNX Runtime's default threads), and batch max_batch with the server's runner plan
     (`runners` runs at once through one session). The best is the ceiling.
  2. `vision-server serve` (a real subprocess, 1 worker, stats recorded to its outbox) on
     loopback; closed-loop clients (each sends its next frame when its answer arrives) at
     concurrency 1, 4 and 16, uploading raw `image/jpeg` bytes or base64 JSON
     (FrameRequest), runs of the two interleaved --repeats times, the best ceiling measured
     again before each pair (the machine may be shared): median frames/s, p50/p95/p99
     latency over all runs, errors, ratio to the ceiling, and the server process's CPU
     time per frame (steadier than frames/s when other processes compete).
  3. The upload path alone: the same server with a trivial 32x32 model, raw vs base64
     JSON at the top concurrency (with the real model its ~40 ms a frame hide the
     upload's cost in the noise).

The client is a minimal asyncio HTTP/1.1 keep-alive client (request bodies encoded once,
before timing) so that it takes as little as possible of the CPU it shares with the server.
Without --model, an untrained yolo11n (from its YAML, nothing downloaded) is exported with
ultralytics at --imgsz with a dynamic batch and a fixed H x W, the export a server wants.

Acceptance: at concurrency 16, raw-upload throughput >= 0.8x the ceiling with zero errors;
raw upload faster than base64 JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

API_KEY = "bench-key-0123456789"


@dataclass
class Level:
    name: str
    concurrency: int
    fps: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    requests: int = 0
    cpu_ms_per_frame: float = float("nan")  # the server process's CPU time per answered frame

    def pct(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, round(q / 100 * (len(data) - 1)))]


# -- the model and the frames --------------------------------------------------------------------


def export_default_model(imgsz: int, out_dir: Path) -> Path:
    """yolo11n from its YAML (untrained), ONNX with a dynamic batch and a fixed imgsz."""
    import warnings

    import onnx

    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "false")
    from ultralytics import YOLO

    out = out_dir / f"yolo11n-{imgsz}-batch.onnx"
    if out.exists():
        return out
    here = Path.cwd()
    scratch = Path(tempfile.mkdtemp(prefix="bench-export-"))
    os.chdir(scratch)  # ultralytics writes the export of a YAML model into the cwd
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            produced = YOLO("yolo11n.yaml").export(
                format="onnx",
                imgsz=imgsz,
                dynamic=True,
                simplify=False,
                device="cpu",
                verbose=False,
            )
        model = onnx.load(str(Path(produced).resolve()))
    finally:
        os.chdir(here)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = imgsz  # fixed letterbox size, symbolic batch
    dims[3].dim_value = imgsz
    onnx.save(model, str(out))
    return out


def make_frames(n: int, width: int, height: int, quality: int) -> list[bytes]:
    from vision_core.synth import render_scene

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        img = np.ascontiguousarray(np.asarray(render_scene(rng, width, height, 6)[0]))
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        frames.append(buf.tobytes())
    return frames


def trivial_model(out_dir: Path) -> Path:
    """A YOLO-layout graph on a 32x32 input that does next to nothing (dynamic batch):
    serving it measures the upload path alone (HTTP, parsing, decode, batching)."""
    import onnx
    from onnx import TensorProto, helper

    out = out_dir / "trivial-32.onnx"
    nodes = [
        helper.make_node("Flatten", ["images"], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["part"]),
        helper.make_node("Reshape", ["part", "shape"], ["output0"]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [7 * 16]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [0, 7, 16]),
    ]
    graph = helper.make_graph(
        nodes,
        "trivial",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 7, 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(out))
    return out


_DETECTORS: dict[tuple[str, int], Any] = {}
_CV2_THREADS = cv2.getNumThreads()


def ceiling(
    model: Path, frames: list[bytes], batch: int, duration: float, runners: int
) -> tuple[float, float]:
    """(frames/s, CPU ms per frame) of decode + predict_batch(batch) in this process.

    `runners` threads at once through one session, each run with cores / runners intra-op
    threads: the server's session plan (runners = 1: one run at a time, ONNX Runtime's
    default thread count). CPU time is the whole process's (every ONNX Runtime thread).
    """
    import threading

    from vision_core.config import build_config
    from vision_server.model import load_model
    from vision_server.settings import ServerSettings

    cv2.setNumThreads(1 if runners > 1 else _CV2_THREADS)  # as the server does
    key = (str(model), runners)
    if key not in _DETECTORS:
        cfg = build_config(
            {"infer": {"model_path": str(model)}, "deploy": {"remote": {"runners": runners}}}
        )
        _DETECTORS[key] = load_model(ServerSettings.from_config(cfg, environ={})).detector
    detector = _DETECTORS[key]

    def one_batch(k: int) -> int:
        chunk = [frames[(k + i) % len(frames)] for i in range(batch)]
        images = [cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) for f in chunk]
        detector.predict_batch(images)
        return len(images)

    counts = [0] * runners

    def loop(r: int, seconds: float, count: bool) -> None:
        k, end = r * batch, time.perf_counter() + seconds
        while time.perf_counter() < end:
            n = one_batch(k)
            k += batch * runners
            if count:
                counts[r] += n

    wall = cpu = 0.0
    for count, seconds in ((False, min(2.0, duration / 4)), (True, duration)):  # warm-up, run
        threads = [threading.Thread(target=loop, args=(r, seconds, count)) for r in range(runners)]
        wall, cpu = time.perf_counter(), time.process_time()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    done = sum(counts)
    return done / (time.perf_counter() - wall), (time.process_time() - cpu) * 1000 / done


# -- the server and the clients ------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    model: Path, port: int, workdir: Path, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "vision-server"
    cmd = [
        str(exe), "serve", "--port", str(port), "--workers", str(args.workers),
        "--set", f"infer.model_path={model}",
        "--set", f"run.workdir={workdir}",
        "--set", f"deploy.remote.max_batch={args.max_batch}",
        "--set", f"deploy.remote.max_wait_ms={args.max_wait_ms}",
        "--set", "deploy.remote.queue_size=256",
        "--set", "deploy.stats.endpoint=",  # events recorded in the outbox, kept locally
    ]  # fmt: skip
    env = {**os.environ, "VISION_INGEST_API_KEY": API_KEY}
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vision-server exited:\n{(workdir / 'serve.log').read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("vision-server did not become healthy in 120 s")


def request_bytes(frame: bytes, mode: str, i: int) -> bytes:
    if mode == "raw":
        head = (
            f"POST /api/v1/frame HTTP/1.1\r\nHost: bench\r\nX-API-Key: {API_KEY}\r\n"
            f"Content-Type: image/jpeg\r\nX-Source-Id: bench\r\nX-Frame-Index: {i}\r\n"
            f"Content-Length: {len(frame)}\r\n\r\n"
        )
        return head.encode() + frame
    body = json.dumps(
        {"source_id": "bench", "frame_index": i, "image_b64": base64.b64encode(frame).decode()}
    ).encode()
    head = (
        f"POST /api/v1/frame HTTP/1.1\r\nHost: bench\r\nX-API-Key: {API_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> int:
    writer.write(data)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return int(status_line.split()[1]) if status_line else 0


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its reaped children), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def closed_loop(
    port: int,
    requests: list[bytes],
    concurrency: int,
    duration: float,
    warmup: float,
    server_pid: int,
) -> Level:
    level = Level("", concurrency, 0.0)
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    counted = 0

    async def sample_cpu() -> tuple[float, float]:
        await asyncio.sleep(measure_from - time.perf_counter())
        first = cpu_seconds(server_pid)
        await asyncio.sleep(stop_at - time.perf_counter())
        return first, cpu_seconds(server_pid)

    async def client(cid: int) -> None:
        nonlocal counted
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        k = cid
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                try:
                    status = await _exchange(reader, writer, requests[k % len(requests)])
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    status = 0
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                t1 = time.perf_counter()
                k += concurrency
                if t0 >= measure_from and t1 <= stop_at:
                    level.requests += 1
                    if status == 200:
                        counted += 1
                        level.latencies_ms.append((t1 - t0) * 1000)
                    else:
                        level.errors += 1
        finally:
            writer.close()

    cpu, *_ = await asyncio.gather(sample_cpu(), *(client(c) for c in range(concurrency)))
    level.fps = counted / duration
    if counted:
        level.cpu_ms_per_frame = (cpu[1] - cpu[0]) * 1000 / counted
    return level


# -- the run ---------------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--model", type=Path, default=None, help="ONNX model (default: exported yolo11n)"
    )
    p.add_argument("--imgsz", type=int, default=320, help="size of the default model")
    p.add_argument("--frames", type=int, default=32, help="distinct frames, sent round robin")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--quality", type=int, default=85, help="JPEG quality")
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per level")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per level")
    p.add_argument("--repeats", type=int, default=3, help="runs per level (median frames/s)")
    p.add_argument("--concurrency", default="1,4,16")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--max-wait-ms", type=float, default=5.0)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    model = args.model or export_default_model(args.imgsz, Path(tempfile.gettempdir()))
    frames = make_frames(args.frames, args.width, args.height, args.quality)
    sizes = [len(f) for f in frames]
    print(f"model {model}\nframes: {len(frames)} JPEGs {args.width}x{args.height}, "
          f"{statistics.mean(sizes) / 1024:.0f} KiB on average; cpu count {os.cpu_count()}", flush=True)  # fmt: skip

    from vision_core.config import build_config
    from vision_server.model import plan_runners
    from vision_server.settings import ServerSettings

    runners, threads = plan_runners(ServerSettings.from_config(build_config({}), environ={}))
    configs = {
        "batch 1, one run at a time": (1, 1),
        f"batch {args.max_batch}, one run at a time": (args.max_batch, 1),
        f"batch {args.max_batch}, {runners} runs at once, {threads} thread(s) each": (
            args.max_batch,
            runners,
        ),
    }
    print("\n1. ceiling: decode + predict_batch in this process", flush=True)
    ceilings: dict[str, tuple[float, float]] = {}
    for label, (batch, n) in configs.items():
        ceilings[label] = ceiling(model, frames, batch, args.duration, n)
        print(f"  {label:<52} {ceilings[label][0]:8.1f} frames/s  "
              f"CPU {ceilings[label][1]:5.1f} ms/frame", flush=True)  # fmt: skip
    best_label = max(ceilings, key=lambda k: ceilings[k][0])
    best_batch, best_runners = configs[best_label]

    print("\n2. vision-server serve over loopback (closed loop); the best ceiling is measured "
          "again before each pair of runs (the machine may be shared)", flush=True)  # fmt: skip
    port = free_port()
    proc = start_server(model, port, work, args)
    levels: list[Level] = []
    block_ceiling: dict[int, float] = {}
    try:
        bodies = {
            m: [request_bytes(f, m, i) for i, f in enumerate(frames)] for m in ("raw", "json")
        }
        for c in (int(x) for x in args.concurrency.split(",")):
            runs: dict[str, list[Level]] = {"raw": [], "json": []}
            ceils: list[float] = []
            for r in range(args.repeats):  # interleaved, alternating: drift hits all alike
                ceils.append(ceiling(model, frames, best_batch, args.duration, best_runners)[0])
                for mode in ("raw", "json") if r % 2 == 0 else ("json", "raw"):
                    lv = asyncio.run(
                        closed_loop(port, bodies[mode], c, args.duration, args.warmup, proc.pid)
                    )
                    runs[mode].append(lv)
            block_ceiling[c] = statistics.median(ceils)
            for mode in ("raw", "json"):
                lv = Level(mode, c, statistics.median(x.fps for x in runs[mode]))
                for x in runs[mode]:
                    lv.latencies_ms += x.latencies_ms
                    lv.errors += x.errors
                    lv.requests += x.requests
                lv.cpu_ms_per_frame = statistics.median(x.cpu_ms_per_frame for x in runs[mode])
                levels.append(lv)
                print(f"  {mode:<4} c={c:<3} {lv.fps:8.1f} frames/s ({lv.fps / block_ceiling[c]:.2f}x "
                      f"the ceiling {block_ceiling[c]:.1f})  p50 {lv.pct(50):7.1f} ms  "
                      f"p95 {lv.pct(95):7.1f} ms  p99 {lv.pct(99):7.1f} ms  errors {lv.errors}  "
                      f"server CPU {lv.cpu_ms_per_frame:5.1f} ms/frame  "
                      f"(runs: {', '.join(f'{x.fps:.1f}' for x in runs[mode])}; "
                      f"ceilings: {', '.join(f'{x:.1f}' for x in ceils)})", flush=True)  # fmt: skip
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    print("\n3. the upload path alone: a trivial 32x32 model served the same way, "
          f"concurrency {max(int(x) for x in args.concurrency.split(','))}", flush=True)  # fmt: skip
    top = max(int(x) for x in args.concurrency.split(","))
    port = free_port()
    proc = start_server(trivial_model(work), port, work, args)
    upload: dict[str, list[Level]] = {"raw": [], "json": []}
    try:
        bodies = {
            m: [request_bytes(f, m, i) for i, f in enumerate(frames)] for m in ("raw", "json")
        }
        for r in range(args.repeats):
            for mode in ("raw", "json") if r % 2 == 0 else ("json", "raw"):
                upload[mode].append(
                    asyncio.run(
                        closed_loop(port, bodies[mode], top, args.duration / 2, 1.0, proc.pid)
                    )
                )
    finally:
        proc.send_signal(2)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    upload_fps = {m: statistics.median(x.fps for x in runs) for m, runs in upload.items()}
    upload_cpu = {
        m: statistics.median(x.cpu_ms_per_frame for x in runs) for m, runs in upload.items()
    }
    upload_errors = sum(x.errors for runs in upload.values() for x in runs)
    for mode in ("raw", "json"):
        print(f"  {mode:<4} {upload_fps[mode]:8.1f} frames/s  server CPU {upload_cpu[mode]:.2f} ms/frame  "
              f"(runs: {', '.join(f'{x.fps:.1f}' for x in upload[mode])})", flush=True)  # fmt: skip

    best_cpu = ceilings[best_label][1]
    print("\n| upload | clients | frames/s | vs ceiling | p50 ms | p95 ms | p99 ms | errors | CPU ms/frame |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    best_fps = ceilings[best_label][0]
    for label, (fps, cpu) in ceilings.items():
        print(f"| raw model (decode incl.), {label} | - | {fps:.1f} | {fps / best_fps:.2f}x | | | | | {cpu:.1f} |")  # fmt: skip
    for lv in levels:
        print(f"| {'raw image/jpeg' if lv.name == 'raw' else 'base64 JSON'} | {lv.concurrency} | "
              f"{lv.fps:.1f} | {lv.fps / block_ceiling[lv.concurrency]:.2f}x | {lv.pct(50):.1f} | "
              f"{lv.pct(95):.1f} | {lv.pct(99):.1f} | {lv.errors} | {lv.cpu_ms_per_frame:.1f} |")  # fmt: skip
    for mode in ("raw", "json"):
        print(f"| upload path only (trivial model), {'raw image/jpeg' if mode == 'raw' else 'base64 JSON'} "
              f"| {top} | {upload_fps[mode]:.1f} | | | | | "
              f"{sum(x.errors for x in upload[mode])} | {upload_cpu[mode]:.2f} |")  # fmt: skip
    print("(vs ceiling: the median of the best ceiling measured between that level's runs)")

    raw_top = next(lv for lv in levels if lv.name == "raw" and lv.concurrency == top)
    json_top = next(lv for lv in levels if lv.name == "json" and lv.concurrency == top)
    ratio = raw_top.fps / block_ceiling[top]
    ok_ratio = ratio >= 0.8 and raw_top.errors == 0
    ok_raw = upload_fps["raw"] > upload_fps["json"] and upload_errors == 0
    raw_cpu = statistics.mean(lv.cpu_ms_per_frame for lv in levels if lv.name == "raw")
    json_cpu = statistics.mean(lv.cpu_ms_per_frame for lv in levels if lv.name == "json")
    print(f"\nat concurrency {top}: raw {raw_top.fps:.1f} frames/s = {ratio:.2f}x the ceiling "
          f"({block_ceiling[top]:.1f}), {raw_top.errors} errors -> "
          f"{'PASS' if ok_ratio else 'FAIL'} (>= 0.8x, 0 errors)")  # fmt: skip
    print(f"CPU efficiency at concurrency {top}: the raw model needs {best_cpu:.1f} ms of CPU "
          f"per frame, the server {raw_top.cpu_ms_per_frame:.1f} ms "
          f"({best_cpu / raw_top.cpu_ms_per_frame:.2f}x; independent of other load)")  # fmt: skip
    print(f"upload path at concurrency {top}: raw {upload_fps['raw']:.1f} vs base64 JSON "
          f"{upload_fps['json']:.1f} frames/s, server CPU {upload_cpu['raw']:.2f} vs "
          f"{upload_cpu['json']:.2f} ms/frame -> {'PASS' if ok_raw else 'FAIL'} (raw faster)")  # fmt: skip
    print(f"with the model (part 2) at concurrency {top}: raw {raw_top.fps:.1f} vs JSON "
          f"{json_top.fps:.1f} frames/s; server CPU per frame over all levels: raw "
          f"{raw_cpu:.2f} vs JSON {json_cpu:.2f} ms (the model's ~40 ms hide the upload's cost)")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps({
            "model": str(model), "ceilings": ceilings, "runners": runners, "threads": threads,
            "block_ceilings": block_ceiling, "upload_path_fps": upload_fps,
            "upload_path_cpu_ms_per_frame": upload_cpu,
            "levels": [{"upload": lv.name, "concurrency": lv.concurrency, "fps": lv.fps,
                        "p50": lv.pct(50), "p95": lv.pct(95), "p99": lv.pct(99),
                        "errors": lv.errors, "cpu_ms_per_frame": lv.cpu_ms_per_frame}
                       for lv in levels],
        }, indent=2))  # fmt: skip
    return 0 if ok_ratio and ok_raw else 1


if __name__ == "__main__":
    sys.exit(main())
