"""FP32 vs static INT8 (QDQ) vs dynamic INT8 on the same YOLO model and images.

Two latencies p50 per image, both measured interleaved in one process (image by image,
model by model) so the ratios compare like with like:
- "session": the ONNX Runtime session alone on the same preprocessed tensor;
- "end to end": preprocess + inference + NMS through the vision-core runtime (the same
  letterbox and numpy post-processing for every model, so its ratio is a little lower).
Every session has ONNX Runtime's default options (all graph optimisations, one intra-op
thread per core) except that idle worker threads do not spin: interleaved on a small CPU,
a spinning pool thread left by the previous model takes a core from the next one, which
penalises the faster model most. mAP50 on the synthetic val split through the same runtime.

    uv run python benchmarks/bench_int8.py                 # trains a small model first
    uv run python benchmarks/bench_int8.py --weights best.pt --imgsz 640
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def train(dataset: Path, workdir: Path, epochs: int, imgsz: int) -> Path:
    from vision_train.ultralytics_env import offline_ultralytics

    offline_ultralytics(workdir / ".ultralytics")
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml", task="detect")
    model.train(
        data=str(dataset / "dataset.yaml"),
        epochs=epochs,
        imgsz=imgsz,
        batch=16,
        device="cpu",
        workers=2,
        plots=False,
        project=str(workdir),
        name="bench",
        exist_ok=True,
        verbose=False,
        amp=False,
        warmup_epochs=1,
        close_mosaic=3,
        seed=0,
        deterministic=True,
    )
    return Path(model.trainer.best)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--weights", type=Path, help="a trained YOLO .pt (default: train one)")
    ap.add_argument("--epochs", type=int, default=20, help="epochs when training here")
    ap.add_argument("--train-imgsz", type=int, default=160)
    ap.add_argument("--imgsz", type=int, default=640, help="export/inference size")
    ap.add_argument("--images", type=int, default=24, help="timed images")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    from vision_core.synth import generate_dataset
    from vision_train.dataset import validate_yolo_dataset
    from vision_train.evaluate import evaluate_onnx
    from vision_train.export.common import yolo_tensor
    from vision_train.export.quantize import (
        quantize_dynamic_int8,
        quantize_static_qdq,
        yolo_head_nodes_to_exclude,
    )
    from vision_train.export.yolo import export_yolo

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench-int8-"))
    dataset = work / "data"
    if not (dataset / "dataset.yaml").is_file():
        generate_dataset(dataset, train_images=240, val_images=40, imgsz=args.train_imgsz, seed=0)
    # measure on --imgsz images whose shapes have the pixel sizes seen in training (CNN
    # detectors are not scale invariant), more of them per image
    eval_set = work / f"eval-{args.imgsz}"
    if not (eval_set / "dataset.yaml").is_file():
        short = args.train_imgsz
        generate_dataset(
            eval_set,
            train_images=64,
            val_images=40,
            imgsz=args.imgsz,
            seed=1,
            max_objects=3 * max(1, args.imgsz // short),
            object_size=(max(8, short // 8), max(10, short // 3)),
        )
    t0 = time.time()
    weights = args.weights or train(dataset, work, args.epochs, args.train_imgsz)
    info = validate_yolo_dataset(eval_set)
    print(f"model: {weights} ({time.time() - t0:.0f}s)", file=sys.stderr)

    fp32 = work / f"model-{args.imgsz}.onnx"
    export_yolo(
        weights,
        fp32,
        imgsz=args.imgsz,
        opset=17,
        dynamic=False,
        sample_images=info.splits["val"][:2],
    )
    static = work / f"model-{args.imgsz}-int8-static.onnx"
    dynamic = work / f"model-{args.imgsz}-int8-dynamic.onnx"
    quantize_static_qdq(
        fp32,
        static,
        info.splits["train"][:64],
        lambda p: yolo_tensor(p, args.imgsz),
        exclude=yolo_head_nodes_to_exclude(fp32),
    )
    quantize_dynamic_int8(fp32, dynamic)
    models = {"fp32": fp32, "int8 static (QDQ)": static, "int8 dynamic": dynamic}
    val = info.splits["val"][: args.images]
    session_ms, e2e_ms = interleaved_latency(models, val, args.imgsz, rounds=args.rounds)
    maps = {name: evaluate_onnx(path, info).map50 for name, path in models.items()}

    print(
        f"\nYOLO11n at {args.imgsz}x{args.imgsz}, {len(val)} images x {args.rounds} rounds, "
        f"interleaved, CPU ({os.cpu_count()} cores); p50 ms, speed = FP32 p50 / model p50"
    )
    print(
        f"{'model':<20} {'session':>9} {'speed':>7} {'end to end':>11} {'speed':>7} "
        f"{'mAP50':>7} {'mAP50 - fp32':>13}"
    )
    for name in models:
        print(
            f"{name:<20} {session_ms[name]:>9.2f} {session_ms['fp32'] / session_ms[name]:>6.2f}x "
            f"{e2e_ms[name]:>11.2f} {e2e_ms['fp32'] / e2e_ms[name]:>6.2f}x "
            f"{maps[name]:>7.3f} {maps[name] - maps['fp32']:>+13.3f}"
        )
    return 0


def interleaved_latency(
    models: dict[str, Path], images: list[Path], imgsz: int, *, rounds: int, warmup: int = 2
) -> tuple[dict[str, float], dict[str, float]]:
    """p50 ms per image per model: the session alone, and end to end through the runtime."""
    import onnxruntime as ort

    from vision_core.infer import load_detector
    from vision_core.media import read_image
    from vision_train.export.common import yolo_tensor

    def session(path: Path) -> ort.InferenceSession:
        opts = ort.SessionOptions()  # vision-core's create_session options, without spinning
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    sessions = {name: session(path) for name, path in models.items()}
    detectors = {name: load_detector(s, conf=0.25) for name, s in sessions.items()}
    inputs = {name: s.get_inputs()[0].name for name, s in sessions.items()}
    tensors = [yolo_tensor(p, imgsz) for p in images]
    frames = [read_image(p) for p in images]
    for name, s in sessions.items():
        for x, frame in zip(tensors[:warmup], frames[:warmup], strict=True):
            s.run(None, {inputs[name]: x})
            detectors[name].predict(frame)
    raw: dict[str, list[float]] = {name: [] for name in models}
    e2e: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for x, frame in zip(tensors, frames, strict=True):
            for name, s in sessions.items():
                t0 = time.perf_counter()
                s.run(None, {inputs[name]: x})
                raw[name].append((time.perf_counter() - t0) * 1000.0)
            for name, det in detectors.items():
                t0 = time.perf_counter()
                det.predict(frame)
                e2e[name].append((time.perf_counter() - t0) * 1000.0)
    return (
        {name: statistics.median(ts) for name, ts in raw.items()},
        {name: statistics.median(ts) for name, ts in e2e.items()},
    )


if __name__ == "__main__":
    raise SystemExit(main())
