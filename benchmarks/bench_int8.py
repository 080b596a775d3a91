"""FP32 vs static INT8 (QDQ) vs dynamic INT8 on the same YOLO model and images.

Latency p50 per image (preprocess + inference + NMS through the vision-core runtime) is
measured interleaved in one process, so the ratios compare like with like; mAP50 on the
synthetic val split through the same runtime.

    uv run python benchmarks/bench_int8.py                 # trains a small model first
    uv run python benchmarks/bench_int8.py --weights best.pt --imgsz 640
"""

from __future__ import annotations

import argparse
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
    from vision_train.evaluate import compare_latency, evaluate_onnx
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
    latency = compare_latency(models, info.splits["val"][: args.images], rounds=args.rounds)
    maps = {name: evaluate_onnx(path, info).map50 for name, path in models.items()}

    base_lat, base_map = latency["fp32"], maps["fp32"]
    print(
        f"\nYOLO11n at {args.imgsz}x{args.imgsz}, {args.images} images x {args.rounds} rounds, interleaved, CPU"
    )
    print(f"{'model':<20} {'p50 ms':>9} {'speed vs fp32':>14} {'mAP50':>8} {'mAP50 - fp32':>13}")
    for name in models:
        print(
            f"{name:<20} {latency[name]:>9.2f} {base_lat / latency[name]:>13.2f}x {maps[name]:>8.3f} {maps[name] - base_map:>+13.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
