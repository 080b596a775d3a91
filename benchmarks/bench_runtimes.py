"""Runtimes x precisions x exports: vision-edge local mode fps, p50 latency and mAP50, in one run.

    uv run --locked python benchmarks/bench_runtimes.py              # ~15 min on 2 cores
    uv run --locked python benchmarks/bench_runtimes.py --rounds 2 --frames 40 --no-server

A YOLO11n trained here on the synthetic shapes (bench_int8's recipe: 160 px, cached under
--workdir) is exported at --imgsz as a fixed-shape and a dynamic-shape ONNX; each gets its
ONNX Runtime static INT8 (QDQ, vision-train's quantizer) and its OpenVINO IR INT8 (NNCF,
vision_train.export.openvino). Then, interleaved in rounds (order rotated each round):

1. vision-edge local mode (the real deployer, in-process through the kernel: it decodes the
   16:9 video itself) for every runtime x precision x export, `infer.runtime = auto` /
   `infer.precision = auto` (its choice tuned once before timing, against mAP50 on the eval
   set, then read from the cache as a restart would) and ultralytics
   `YOLO(onnx).predict(video, stream=True)` on the same fixed ONNX and video. fps = the
   run's frames / wall; p50 = per-frame latency. mAP50 on the 640 px eval set through the
   same adapters (ultralytics val protocol: conf 0.001, multi-label).
2. vision-server at concurrency 16 (raw JPEG uploads, closed loop, bench_server's client)
   with this branch's code on `onnxruntime`/`fp32` and on `auto`, and, with --baseline-src
   (a checkout of main's packages/), main's code, interleaved.

Bars: the best passing choice (mAP50 within 0.01 of ONNX Runtime FP32) >= 1.8x ONNX Runtime
FP32 fps (same export); `auto` >= 1.5x ultralytics; the server on `auto` >= 1.5x main's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

CELLS = [  # (runtime, precision, which INT8 file: "" / "qdq" / "ir")
    ("onnxruntime", "fp32", ""),
    ("onnxruntime", "int8", "qdq"),
    ("openvino", "fp32", ""),
    ("openvino", "bf16", ""),
    ("openvino", "int8", "ir"),
    ("openvino", "int8", "qdq"),
]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cpu_line() -> str:
    from vision_core.infer.runtimes import cpu_description, runtime_versions

    model, flags = cpu_description()
    versions = ", ".join(f"{k} {v}" for k, v in runtime_versions().items())
    return f"CPU {model} ({os.cpu_count()} cores), ISA flags: {' '.join(flags)}; {versions}"


# -- setup ---------------------------------------------------------------------------------------


def prepare(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    from bench_int8 import train

    from vision_core.synth import generate_dataset, generate_video
    from vision_train.dataset import validate_yolo_dataset
    from vision_train.export.common import yolo_tensor
    from vision_train.export.openvino import export_openvino_int8
    from vision_train.export.quantize import quantize_static_qdq, yolo_head_nodes_to_exclude
    from vision_train.export.yolo import export_yolo

    data = work / "data"
    if not (data / "dataset.yaml").is_file():
        generate_dataset(data, train_images=240, val_images=40, imgsz=160, seed=0)
    weights = work / "bench" / "weights" / "best.pt"
    if not weights.is_file():
        log("training YOLO11n on the synthetic shapes (bench_int8's recipe, a few minutes)")
        weights = train(data, work, args.epochs, 160)
    eval_set = work / f"eval-{args.imgsz}"
    if not (eval_set / "dataset.yaml").is_file():
        generate_dataset(eval_set, train_images=64, val_images=40, imgsz=args.imgsz, seed=1,
                         max_objects=3 * max(1, args.imgsz // 160), object_size=(20, 53))  # fmt: skip
    info = validate_yolo_dataset(eval_set)
    video = work / f"video-1280x720-{args.video_frames}.avi"
    if not video.is_file():
        generate_video(video, frames=args.video_frames, width=1280, height=720, fps=30.0)
    models: dict[str, Path] = {}
    for export in ("fixed", "dynamic"):
        fp32 = work / f"yolo11n-{export}-{args.imgsz}.onnx"
        if not fp32.is_file():
            log(f"exporting {fp32.name}")
            export_yolo(weights, fp32, imgsz=args.imgsz, opset=17, dynamic=export == "dynamic",
                        sample_images=info.splits["val"][:2])  # fmt: skip
        qdq = fp32.with_name(f"{fp32.stem}-int8.onnx")
        calib = info.splits["train"][:64]
        if not qdq.is_file():
            log(f"ONNX Runtime static INT8 of {fp32.name}")
            quantize_static_qdq(fp32, qdq, calib, lambda p: yolo_tensor(p, args.imgsz),
                                exclude=yolo_head_nodes_to_exclude(fp32))  # fmt: skip
        ir = fp32.with_name(f"{fp32.stem}-int8.xml")
        if not ir.is_file():
            log(f"OpenVINO IR INT8 (NNCF) of {fp32.name}")
            export_openvino_int8(fp32, calib, work)
        models[export] = fp32
    return {"models": models, "info": info, "eval_set": eval_set, "video": video,
            "weights": weights}  # fmt: skip


def model_file(fp32: Path, which: str) -> Path:
    if which == "qdq":
        return fp32.with_name(f"{fp32.stem}-int8.onnx")
    if which == "ir":
        return fp32.with_name(f"{fp32.stem}-int8.xml")
    return fp32


def map50(path: Path, runtime: str, precision: str, info: Any) -> float:
    from vision_core.formats.yolo import boxes_to_arrays, label_path_for, read_label_file
    from vision_core.infer import YoloDetector, load_detector
    from vision_core.media import read_image
    from vision_core.metrics import MetricAccumulator, detections_to_arrays

    det = load_detector(path, conf=0.001, iou=0.7, class_map=info.names, runtime=runtime,
                        precision=precision)  # fmt: skip
    assert isinstance(det, YoloDetector)
    det.multi_label = True
    acc = MetricAccumulator(info.names)
    for p in info.splits["val"]:
        img = read_image(p)
        boxes, scores, cls = detections_to_arrays(det.predict(img))
        tb, _, tc = boxes_to_arrays(read_label_file(label_path_for(p)), img.shape[1], img.shape[0])
        acc.add(boxes, scores, cls, tb, tc)
    return float(acc.compute().map50)


# -- the timed runs ------------------------------------------------------------------------------


def edge_overrides(work: Path, video: Path, frames: int, threads: int) -> list[str]:
    return [
        f"run.workdir={work}", "run.name=bench-runtimes", f"infer.threads={threads}",
        "deploy.edge.mode=local", "deploy.edge.source=video", f"deploy.edge.video_path={video}",
        f"deploy.edge.max_frames={frames}", "deploy.stats.endpoint=",
    ]  # fmt: skip


def run_edge(overrides: list[str], frames: int) -> tuple[float, float, str]:
    from vision_core.config import load_config
    from vision_core.kernel import VisionKernel
    from vision_edge.deploy import run_edge_local

    cfg = load_config(None, overrides)
    result = VisionKernel(cfg, console=False).run_callable(
        "deploy-edge", "edge", lambda ctx: run_edge_local(ctx, install_signals=False)
    )
    m = result.run_context.metrics
    if result.status != "ok" or m.get("frames") != frames:
        raise SystemExit(f"vision-edge run {result.status}: {result.error}; metrics {m}")
    return float(m["fps"]), float(m["latency_ms"]["p50"]), str(m.get("model", ""))


def run_ultralytics(model: Any, video: Path, n: int, imgsz: int) -> tuple[float, float, str]:
    from bench_edge import run_ultralytics_video

    fps, p50 = run_ultralytics_video(model, video, n, imgsz)
    return fps, p50, ""


# -- the server ----------------------------------------------------------------------------------


def start_server(
    model: Path, port: int, workdir: Path, sets: list[str], pythonpath: str | None
) -> subprocess.Popen[bytes]:
    import socket

    from bench_server import API_KEY

    exe = Path(sys.executable).parent / "vision-server"
    cmd = [str(exe), "serve", "--port", str(port), "--workers", "1",
           "--set", f"infer.model_path={model}", "--set", f"run.workdir={workdir}",
           "--set", "deploy.remote.queue_size=256", "--set", "deploy.stats.endpoint="]  # fmt: skip
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "VISION_INGEST_API_KEY": API_KEY}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    workdir.mkdir(parents=True, exist_ok=True)
    out = open(workdir / "serve.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 300  # `auto` tunes on its first start
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"vision-server exited:\n{(workdir / 'serve.log').read_text()}")
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", port), timeout=0.5) as s,
        ):
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                return proc
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("vision-server did not become healthy in 300 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(2)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench_server(work: Path, setup: dict[str, Any], args: argparse.Namespace) -> list[str]:
    from bench_server import closed_loop, free_port, make_frames, request_bytes

    from vision_train.export.yolo import export_yolo

    # the export a server wants: a dynamic batch, a fixed H x W (bench_server's default), at
    # 320, from the trained weights; its INT8 files beside it for `auto`
    info = setup["info"]
    model = work / "server" / "yolo11n-server-320.onnx"
    if not model.is_file():
        model.parent.mkdir(parents=True, exist_ok=True)
        export_yolo(setup["weights"], model, imgsz=320, opset=17, dynamic=True,
                    sample_images=info.splits["val"][:2])  # fmt: skip
        _fixed_size(model, 320)
        from vision_train.export.common import yolo_tensor
        from vision_train.export.openvino import export_openvino_int8
        from vision_train.export.quantize import quantize_static_qdq, yolo_head_nodes_to_exclude

        calib = info.splits["train"][:64]
        quantize_static_qdq(model, model.with_name(f"{model.stem}-int8.onnx"), calib,
                            lambda p: yolo_tensor(p, 320),
                            exclude=yolo_head_nodes_to_exclude(model))  # fmt: skip
        export_openvino_int8(model, calib, model.parent)
    frames = make_frames(32, 640, 480, 85)
    bodies = [request_bytes(f, "raw", i) for i, f in enumerate(frames)]
    tune_sets = [f"infer.tune_val_dataset={setup['eval_set']}", "infer.tune_seconds=3"]
    variants: dict[str, tuple[list[str], str | None]] = {
        "this branch, onnxruntime/fp32": (["infer.runtime=onnxruntime", "infer.precision=fp32"], None),
        "this branch, auto/auto": (["infer.runtime=auto", "infer.precision=auto", *tune_sets], None),
    }  # fmt: skip
    if args.baseline_src:
        src = Path(args.baseline_src).resolve()
        paths = os.pathsep.join(str(p) for p in sorted(src.glob("vision-*/src")))
        variants["main (--baseline-src)"] = ([], paths)
    fps: dict[str, list[float]] = {k: [] for k in variants}
    errors: dict[str, int] = dict.fromkeys(variants, 0)
    names = list(variants)
    for r in range(args.server_repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            sets, pythonpath = variants[name]
            port = free_port()
            wd = work / "server" / name.replace(" ", "-").replace(",", "").replace("/", "-")
            proc = start_server(model, port, wd, sets, pythonpath)
            try:
                lv = asyncio.run(closed_loop(port, bodies, 16, args.server_duration, 2.0, proc.pid))
            finally:
                stop(proc)
            fps[name].append(lv.fps)
            errors[name] += lv.errors
            log(f"server round {r + 1} {name:<32} {lv.fps:7.1f} frames/s  errors {lv.errors}")
    lines = ["", f"### vision-server, concurrency 16, raw JPEG 640x480, {model.name} "
             f"(dynamic batch, 320), {args.server_repeats} interleaved runs of "
             f"{args.server_duration:.0f} s", "",
             "| server | frames/s (median) | runs | errors | x onnxruntime/fp32 | x main |",
             "|---|---:|---|---:|---:|---:|"]  # fmt: skip
    base = statistics.median(fps["this branch, onnxruntime/fp32"]) or float("nan")
    main_fps = statistics.median(fps["main (--baseline-src)"]) if args.baseline_src else None
    main_fps = main_fps or None
    for name in names:
        med = statistics.median(fps[name])
        x_main = f"{med / main_fps:.2f}" if main_fps else "-"
        runs = ", ".join(f"{x:.1f}" for x in fps[name])
        lines.append(
            f"| {name} | {med:.1f} | {runs} | {errors[name]} | {med / base:.2f} | {x_main} |"
        )
    auto = statistics.median(fps["this branch, auto/auto"])
    ref = main_fps or base
    ok = auto >= 1.5 * ref
    lines.append("")
    lines.append(f"- {'PASS' if ok else 'FAIL'} server on auto >= 1.5x "
                 f"{'main' if main_fps else 'onnxruntime/fp32'}: {auto / ref:.2f}x")  # fmt: skip
    choice = work / "server" / "this-branch" / "tune-cache.json"
    if choice.is_file():
        lines.append(f"  (auto's table is in {choice})")
    return lines


def _fixed_size(path: Path, imgsz: int) -> None:
    """Fix H and W of a dynamic export, keep its batch symbolic (bench_server's export)."""
    import onnx

    model = onnx.load(str(path))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = imgsz
    dims[3].dim_value = imgsz
    tmp = path.with_suffix(".tmp.onnx")
    onnx.save(model, str(tmp))
    tmp.replace(path)


# -- main ----------------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--workdir", type=Path, default=Path("work-dir/bench-runtimes"))
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--frames", type=int, default=60, help="frames per vision-edge run")
    ap.add_argument("--video-frames", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="infer.threads (0 = default)")
    ap.add_argument("--no-server", dest="server", action="store_false")
    ap.add_argument("--baseline-src", help="main's packages/ dir (a checkout) for the server")
    ap.add_argument("--server-repeats", type=int, default=3)
    ap.add_argument("--server-duration", type=float, default=10.0)
    args = ap.parse_args()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    from vision_train.ultralytics_env import offline_ultralytics

    os.environ["YOLO_VERBOSE"] = "false"
    offline_ultralytics(work / ".ultralytics")
    print(cpu_line(), f"python {platform.python_version()}", flush=True)
    setup = prepare(work, args)
    info, video, n = setup["info"], setup["video"], args.frames

    # the rows: (label, export, runtime, precision, model file)
    rows: list[tuple[str, str, str, str, Path]] = []
    for export, fp32 in setup["models"].items():
        for runtime, precision, which in CELLS:
            label = f"{runtime}/{precision}" + (f" ({which})" if which else "")
            rows.append((label, export, runtime, precision, model_file(fp32, which)))
    log("mAP50 of every row on the eval set")
    maps = {(lab, e): map50(p, rt, pr, info) for lab, e, rt, pr, p in rows}

    # auto: tuned once here (against mAP50 on the eval set), then read from the cache
    from vision_core.config import load_config
    from vision_core.infer.tune import tune_from_config

    auto_sets = ["infer.runtime=auto", "infer.precision=auto",
                 f"infer.tune_val_dataset={setup['eval_set']}", "infer.tune_seconds=4",
                 f"infer.tune_cache={work / 'tune-cache.json'}"]  # fmt: skip
    fixed = setup["models"]["fixed"]
    auto_cfg = load_config(None, [*edge_overrides(work / "edge", video, n, args.threads),
                                  f"infer.model_path={fixed}", *auto_sets])  # fmt: skip
    choice = tune_from_config(auto_cfg, fixed, force=True)
    log("auto's table:\n" + choice.format_table())

    from ultralytics import YOLO

    ultra = YOLO(str(fixed), task="detect")
    runners: dict[str, Any] = {}
    for lab, e, rt, pr, p in rows:
        sets = [*edge_overrides(work / "edge", video, n, args.threads), f"infer.model_path={p}",
                f"infer.runtime={rt}", f"infer.precision={pr}"]  # fmt: skip
        runners[f"{lab} | {e}"] = lambda s=sets: run_edge(s, n)
    auto_run = [*edge_overrides(work / "edge", video, n, args.threads),
                f"infer.model_path={fixed}", *auto_sets]  # fmt: skip
    runners["auto | fixed"] = lambda: run_edge(auto_run, n)
    runners["ultralytics predict | fixed"] = lambda: run_ultralytics(ultra, video, n, args.imgsz)
    for f in runners.values():  # warm-up (first sessions, ultralytics' predictor)
        f()
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in runners}
    names = list(runners)
    for r in range(args.rounds):
        shift = (r * len(names)) // max(1, args.rounds)
        for name in names[shift:] + names[:shift]:
            fps, p50, _ = runners[name]()
            results[name].append((fps, p50))
            log(f"round {r + 1} {name:<40} {fps:6.2f} fps  p50 {p50:6.1f} ms")

    def med(name: str, i: int) -> float:
        return statistics.median(x[i] for x in results[name])

    print(f"\n### vision-edge local mode, YOLO11n {args.imgsz} (trained on synthetic shapes), "
          f"1280x720 video, {n} frames x {args.rounds} interleaved rounds; "
          f"uptime: {os.getloadavg()[0]:.2f} load\n")  # fmt: skip
    print("| runtime/precision | export | fps | p50 ms | x ORT fp32 | mAP50 | mAP50 - ORT fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    best: tuple[float, str] = (0.0, "")
    for lab, e, _rt, _pr, _p in rows:
        name = f"{lab} | {e}"
        ref = med(f"onnxruntime/fp32 | {e}", 0)
        d = maps[lab, e] - maps["onnxruntime/fp32", e]
        x = med(name, 0) / ref
        if d >= -0.01 and x > best[0]:
            best = (x, name)
        print(f"| {lab} | {e} | {med(name, 0):.2f} | {med(name, 1):.1f} | {x:.2f} | "
              f"{maps[lab, e]:.3f} | {d:+.3f} |")  # fmt: skip
    auto_x = med("auto | fixed", 0) / med("onnxruntime/fp32 | fixed", 0)
    ul = med("ultralytics predict | fixed", 0)
    print(f"| auto (chose {choice.runtime}/{choice.precision}) | fixed | "
          f"{med('auto | fixed', 0):.2f} | {med('auto | fixed', 1):.1f} | {auto_x:.2f} | | |")  # fmt: skip
    print(f"| ultralytics predict | fixed | {ul:.2f} | {med('ultralytics predict | fixed', 1):.1f} "
          f"| {ul / med('onnxruntime/fp32 | fixed', 0):.2f} | | |")  # fmt: skip
    ok1 = best[0] >= 1.8
    ok2 = med("auto | fixed", 0) >= 1.5 * ul
    print(f"\n- {'PASS' if ok1 else 'FAIL'} best choice with mAP50 within 0.01 >= 1.8x ONNX "
          f"Runtime FP32: {best[1]} {best[0]:.2f}x")  # fmt: skip
    print(f"- {'PASS' if ok2 else 'FAIL'} vision-edge on auto >= 1.5x ultralytics predict: "
          f"{med('auto | fixed', 0) / ul:.2f}x")  # fmt: skip
    print("\nauto's tuning table (end-to-end predict, one frame at a time):")
    print(choice.format_table())
    ok3 = True
    if args.server:
        lines = bench_server(work, setup, args)
        print("\n".join(lines))
        ok3 = any("PASS server" in ln for ln in lines)
    print("\n" + cpu_line())
    return 0 if ok1 and ok2 and ok3 else 1


if __name__ == "__main__":
    sys.exit(main())
