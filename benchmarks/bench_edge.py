"""vision-edge local mode vs raw `session.run` vs ultralytics `YOLO(onnx).predict`.

Same YOLO11n ONNX model, same frames, for a 4:3 (640x480) and a 16:9 (1280x720) video and
for a fixed-shape (imgsz x imgsz) and a dynamic-shape export:

- vision-edge: the real local mode, in-process through the kernel
  (`run_callable("deploy-edge", "edge", run_edge_local)`): it reads the video file itself
  (decode, prefetch thread, letterbox + tensor, session.run, NMS, one StatsEvent committed
  to the SQLite outbox per frame; `deploy.stats.endpoint` empty, so nothing is sent).
  fps and p50 latency are the run's own metrics (frames / loop wall time; latency =
  prepare + infer of a frame). The session is opened fresh each run (no warm-up).
- raw session.run: `onnxruntime.InferenceSession` with vision-core's session options
  (same intra-op threads), fed tensors letterboxed before timing (vision-core's letterbox:
  the exported square for the fixed model, the minimal stride-aligned rectangle for the
  dynamic one): the ceiling, zero pre/post work. fps = frames / sum of run times.
- ultralytics: `YOLO(onnx, task="detect").predict(frame, imgsz=..., verbose=False)` on the
  same frames, decoded into memory before timing. fps = frames / wall; latency = one call.

The machine may be shared: the variants run interleaved in rounds (within a round the three
variants of a source/export run back to back, in an order rotated each round); the table
shows medians over rounds; the ratio columns are the medians of the per-round paired
ratios. The model is untrained (built from yolo11n.yaml: speed does not depend on the
weights), so almost no box passes `conf` and NMS is nearly free for every variant.

    uv run --locked python benchmarks/bench_edge.py                  # ~5 min on 2 cores
    uv run --locked python benchmarks/bench_edge.py --frames 100 --rounds 5 --breakdown

ultralytics reads the video file itself (`predict(video, stream=True)`: its own decode,
like vision-edge: the like-for-like comparison); `--ultralytics-frames` gives it frames
decoded before timing instead (then it skips the decode vision-edge pays). `--breakdown` adds the per-stage
times of local mode (decode, letterbox, to_tensor, session.run, NMS, outbox.put), run
serially, next to one local-mode and one raw run made right after. Exit status 0 when every criterion passes, else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SOURCES = {"4:3": (640, 480), "16:9": (1280, 720)}
EXPORTS = ("fixed", "dynamic")
VARIANTS = ("vision-edge", "raw session.run", "ultralytics")


@dataclass
class Cell:
    """The runs of one (source, export, variant)."""

    fps: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# -- setup ---------------------------------------------------------------------------------


def export_models(workdir: Path, imgsz: int) -> dict[str, Path]:
    """yolo11n.yaml (random weights) -> fixed and dynamic ONNX, opset 17."""
    from ultralytics import YOLO

    out: dict[str, Path] = {}
    for kind in EXPORTS:
        target = workdir / f"yolo11n_{kind}_{imgsz}.onnx"
        if not target.is_file():
            model = YOLO("yolo11n.yaml", task="detect")
            with chdir(workdir):  # a YAML model is exported into the working directory
                exported = model.export(
                    format="onnx",
                    imgsz=imgsz,
                    dynamic=kind == "dynamic",
                    opset=17,
                    simplify=True,
                    device="cpu",
                    batch=1,
                    verbose=False,
                )
                Path(exported).resolve().replace(target)
        out[kind] = target
    return out


def make_videos(workdir: Path, frames: int) -> dict[str, Path]:
    from vision_core.synth import generate_video

    out: dict[str, Path] = {}
    for name, (w, h) in SOURCES.items():
        path = workdir / f"video_{w}x{h}_{frames}.avi"
        if not path.is_file():
            generate_video(path, frames=frames, width=w, height=h, fps=30.0)
        out[name] = path
    return out


def decode(path: Path, n: int) -> list[Any]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    try:
        while len(frames) < n:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(img)
    finally:
        cap.release()
    if len(frames) < n:
        raise SystemExit(f"{path}: only {len(frames)} frames, wanted {n}")
    return frames


def raw_session(model: Path, threads: int) -> Any:
    """The session vision-core opens (`create_session`: the same options as vision-edge)."""
    from vision_core.infer import create_session

    return create_session(model, threads=threads)


# -- the three variants --------------------------------------------------------------------


def run_edge(
    workdir: Path, model: Path, video: Path, frames: int, threads: int, edge_runners: int = 1
) -> tuple[float, float]:
    from vision_core.config import load_config
    from vision_core.kernel import VisionKernel
    from vision_edge.deploy import run_edge_local

    cfg = load_config(
        None,
        [
            f"run.workdir={workdir}",
            "run.name=bench-edge",
            f"infer.model_path={model}",
            f"infer.threads={threads}",
            "deploy.edge.mode=local",
            "deploy.edge.source=video",
            f"deploy.edge.video_path={video}",
            f"deploy.edge.max_frames={frames}",
            f"deploy.edge.runners={edge_runners}",
            "deploy.stats.endpoint=",
        ],
    )
    result = VisionKernel(cfg, console=False).run_callable(
        "deploy-edge", "edge", lambda ctx: run_edge_local(ctx, install_signals=False)
    )
    m = result.run_context.metrics
    if result.status != "ok" or m.get("frames") != frames:
        raise SystemExit(f"vision-edge run {result.status}: {result.error}; metrics {m}")
    return float(m["fps"]), float(m["latency_ms"]["p50"])


def run_raw(session: Any, tensors: list[Any]) -> tuple[float, float]:
    name = session.get_inputs()[0].name
    lat = []
    for t in tensors:
        t0 = time.perf_counter()
        session.run(None, {name: t})
        lat.append(time.perf_counter() - t0)
    return len(tensors) / sum(lat), statistics.median(lat) * 1000.0


def run_ultralytics(model: Any, frames: list[Any], imgsz: int) -> tuple[float, float]:
    lat = []
    t_all = time.perf_counter()
    for f in frames:
        t0 = time.perf_counter()
        model.predict(f, imgsz=imgsz, verbose=False, device="cpu")
        lat.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    return len(frames) / wall, statistics.median(lat) * 1000.0


def run_ultralytics_video(model: Any, video: Path, n: int, imgsz: int) -> tuple[float, float]:
    """ultralytics reading the video file itself (its own decode), first n frames."""
    lat = []
    t_all = t0 = time.perf_counter()
    gen = model.predict(str(video), imgsz=imgsz, verbose=False, device="cpu", stream=True)
    for _ in gen:
        t1 = time.perf_counter()
        lat.append(t1 - t0)
        t0 = t1
        if len(lat) == n:
            break
    gen.close()
    wall = time.perf_counter() - t_all
    return len(lat) / wall, statistics.median(lat) * 1000.0


# -- where vision-edge's time goes ---------------------------------------------------------


def breakdown(model: Path, video: Path, n: int, threads: int, outbox_dir: Path) -> dict[str, float]:
    """Per-frame p50 ms of each stage of local mode, run serially on one thread."""
    import cv2

    from vision_core.infer import load_detector
    from vision_core.stats import Outbox
    from vision_core.types import make_stats_event

    det: Any = load_detector(model, threads=threads)
    outbox = Outbox(outbox_dir / f"breakdown-{time.time_ns()}.db")
    stages: dict[str, list[float]] = {
        k: [] for k in ("decode", "letterbox", "to_tensor", "session.run", "nms+post", "outbox.put")
    }
    cap = cv2.VideoCapture(str(video))
    try:
        det.predict(decode(video, 1)[0])  # warm-up
        for i in range(n):
            t0 = time.perf_counter()
            ok, img = cap.read()
            t1 = time.perf_counter()
            if not ok:
                break
            boxed = det.letterbox(img)
            t2 = time.perf_counter()
            tensor = det.to_tensor([boxed.image])
            t3 = time.perf_counter()
            raw = det.run(tensor)
            t4 = time.perf_counter()
            dets = det._postprocess(raw[0], boxed, img.shape[:2])
            t5 = time.perf_counter()
            outbox.put(
                make_stats_event(
                    source_id="bench",
                    mode="local",
                    frame_index=i,
                    latency_ms=(t5 - t1) * 1000.0,
                    detections=dets,
                    model=model.name,
                )
            )
            t6 = time.perf_counter()
            for key, a, b in zip(
                stages, (t0, t1, t2, t3, t4, t5), (t1, t2, t3, t4, t5, t6), strict=True
            ):
                stages[key].append((b - a) * 1000.0)
    finally:
        cap.release()
        outbox.close()
    return {k: statistics.median(v) for k, v in stages.items()}


# -- main ----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=30, help="timed frames per run")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians)")
    ap.add_argument("--video-frames", type=int, default=150, help="frames in each video")
    ap.add_argument("--imgsz", type=int, default=640, help="export / predict size")
    ap.add_argument("--threads", type=int, default=0, help="infer.threads (0 = ORT default)")
    ap.add_argument("--runners", type=int, default=1, help="deploy.edge.runners of vision-edge")
    ap.add_argument(
        "--ultralytics-frames",
        dest="ultralytics_video",
        action="store_false",
        help="give ultralytics frames decoded before timing (default: it reads the video)",
    )
    ap.add_argument("--breakdown", action="store_true", help="always time local mode's stages")
    ap.add_argument("--workdir", type=Path, help="keep models/videos here (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.rounds < 1:
        ap.error("--frames and --rounds must be >= 1")

    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-edge-")))
        else:
            workdir = args.workdir.resolve()
            workdir.mkdir(parents=True, exist_ok=True)
        return bench(args, workdir)
    return 1  # pragma: no cover - unreachable (mypy)


def bench(args: argparse.Namespace, workdir: Path) -> int:
    from vision_train.ultralytics_env import offline_ultralytics

    os.environ["YOLO_VERBOSE"] = "false"
    offline_ultralytics(workdir / ".ultralytics")
    from ultralytics import YOLO

    from vision_core.infer import load_detector

    n = args.frames
    t_setup = time.perf_counter()
    models = export_models(workdir, args.imgsz)
    videos = make_videos(workdir, max(args.video_frames, n))
    frames = {s: decode(p, n) for s, p in videos.items()}

    configs = [(s, e) for s in SOURCES for e in EXPORTS]
    runners: dict[tuple[str, str, str], Callable[[], tuple[float, float]]] = {}
    shapes: dict[tuple[str, str], str] = {}
    for s, e in configs:
        det: Any = load_detector(models[e], threads=args.threads)
        tensors = [det.prepare(f).tensor for f in frames[s]]
        shapes[s, e] = "x".join(map(str, tensors[0].shape[2:]))
        sess = raw_session(models[e], args.threads)
        ultra = YOLO(str(models[e]), task="detect")
        for _ in range(2):  # warm-up: session arenas, ultralytics' predictor setup
            sess.run(None, {sess.get_inputs()[0].name: tensors[0]})
            ultra.predict(frames[s][0], imgsz=args.imgsz, verbose=False, device="cpu")
        edge_dir = workdir / f"edge-{s.replace(':', 'x')}-{e}"
        runners[s, e, "vision-edge"] = lambda m=models[e], v=videos[s], d=edge_dir: run_edge(
            d, m, v, n, args.threads, args.runners
        )
        runners[s, e, "raw session.run"] = lambda sess=sess, t=tensors: run_raw(sess, t)
        if args.ultralytics_video:
            runners[s, e, "ultralytics"] = lambda u=ultra, v=videos[s]: run_ultralytics_video(
                u, v, n, args.imgsz
            )
        else:
            runners[s, e, "ultralytics"] = lambda u=ultra, f=frames[s]: run_ultralytics(
                u, f, args.imgsz
            )
    log(f"setup {time.perf_counter() - t_setup:.1f}s; {n} frames x {args.rounds} round(s)")

    cells = {key: Cell() for key in runners}
    paired: dict[tuple[str, str, str, str], list[float]] = {}
    t_bench = time.perf_counter()
    for r in range(args.rounds):
        for s, e in configs:
            order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
            got: dict[str, float] = {}
            for v in order:
                fps, p50 = runners[s, e, v]()
                cells[s, e, v].fps.append(fps)
                cells[s, e, v].p50.append(p50)
                got[v] = fps
                log(f"round {r + 1} {s:>4} {e:<7} {v:<15} {fps:7.2f} fps  p50 {p50:7.1f} ms")
            for v in VARIANTS:
                for ref in ("raw session.run", "ultralytics"):
                    paired.setdefault((s, e, v, ref), []).append(got[v] / got[ref])
    log(f"timed part {time.perf_counter() - t_bench:.1f}s")

    import onnxruntime as ort

    print(
        f"\n### vision-edge local vs raw session.run vs ultralytics predict "
        f"(YOLO11n ONNX, imgsz {args.imgsz}, {n} frames x {args.rounds} rounds, "
        f"{os.cpu_count()} CPUs, intra-op threads {args.threads or 'ORT default'}, "
        f"onnxruntime {ort.__version__})\n"
    )
    print(
        "| source | export | input | variant | fps | fps min-max | p50 ms | x raw | x ultralytics |"
    )
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for s, e in configs:
        w, h = SOURCES[s]
        for v in VARIANTS:
            c = cells[s, e, v]
            x_raw = median(paired[s, e, v, "raw session.run"])
            x_ul = median(paired[s, e, v, "ultralytics"])
            print(
                f"| {s} {w}x{h} | {e} | {shapes[s, e]} | {v} | {median(c.fps):.2f} | "
                f"{min(c.fps):.2f}-{max(c.fps):.2f} | "
                f"{median(c.p50):.1f} | {x_raw:.2f} | {x_ul:.2f} |"
            )
    ul_input = (
        "ultralytics reads the video file itself (its own decode; p50 = time between results)"
        if args.ultralytics_video
        else "ultralytics gets the frames decoded before timing"
    )
    print(
        "\nfps, p50: medians over rounds; x raw / x ultralytics: median of the per-round "
        "fps ratios (paired runs). vision-edge decodes the video file itself; raw gets "
        f"tensors decoded and letterboxed before timing; {ul_input}."
    )

    edge = "vision-edge"
    c1 = {(s, e): median(paired[s, e, edge, "raw session.run"]) for s, e in configs}
    c2 = {(s, e): median(paired[s, e, edge, "ultralytics"]) for s, e in configs}
    dyn = cells["16:9", "dynamic", edge]
    fix = cells["16:9", "fixed", edge]
    dyn_vs_fix = median([d / f for d, f in zip(dyn.fps, fix.fps, strict=True)])

    def fmt(d: dict[tuple[str, str], float]) -> str:
        return ", ".join(f"{s} {e} {x:.2f}x" for (s, e), x in d.items())

    ok1 = all(x >= 0.9 for x in c1.values())
    ok2 = all(x >= 1.0 for x in c2.values())
    ok3 = dyn_vs_fix > 1.0
    print()
    print(f"- {'PASS' if ok1 else 'FAIL'} local mode >= 0.9x raw session.run: {fmt(c1)}")
    print(f"- {'PASS' if ok2 else 'FAIL'} local mode >= ultralytics predict: {fmt(c2)}")
    print(
        f"- {'PASS' if ok3 else 'FAIL'} 16:9 dynamic export faster than fixed "
        f"{args.imgsz}x{args.imgsz}: {median(dyn.fps):.2f} vs {median(fix.fps):.2f} fps "
        f"({dyn_vs_fix:.2f}x paired)"
    )

    if not ok1 and not args.breakdown:
        print("\n(local mode under 0.9x raw: --breakdown shows where its time goes)")
    if args.breakdown:
        bn = min(n, 30)
        print(
            f"\n### local mode per stage, serial, p50 ms per frame ({bn} frames; "
            "vision-edge overlaps decode+letterbox+to_tensor with the model on a thread)\n"
        )
        keys = ("decode", "letterbox", "to_tensor", "session.run", "nms+post", "outbox.put")
        print(
            "| source | export | "
            + " | ".join(keys)
            + " | sum | vision-edge ms/frame | raw ms/frame |"
        )
        print("|---|---|" + "---:|" * (len(keys) + 3))
        for s, e in configs:
            b = breakdown(models[e], videos[s], bn, args.threads, workdir)
            # the same pass, right after: local mode and raw session.run on those frames
            edge_fps, _ = runners[s, e, edge]()
            raw_fps, _ = runners[s, e, "raw session.run"]()
            print(
                f"| {s} | {e} | "
                + " | ".join(f"{b[k]:.2f}" for k in keys)
                + f" | {sum(b.values()):.1f} | {1000 / edge_fps:.1f} | {1000 / raw_fps:.1f} |"
            )
    return 0 if ok1 and ok2 and ok3 else 1


if __name__ == "__main__":
    sys.exit(main())
