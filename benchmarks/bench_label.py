"""Images/s of `vision-label model` vs ultralytics `YOLO(onnx).predict(save_txt=True)`.

Same ONNX model, same images, same conf/iou/max_det, measured alternately in one process
(best of `--rounds` for each). Both write one YOLO .txt per image. vision-label runs
through the kernel exactly as the CLI does (run dir, metrics.json, dataset files); the
ultralytics model is warmed up on one image first (its setup is not counted).

    uv run python benchmarks/bench_label.py                 # untrained yolo11n, 320 px
    uv run python benchmarks/bench_label.py --onnx model.onnx --images 300
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path


def export_untrained(workdir: Path, imgsz: int) -> Path:
    from vision_train.ultralytics_env import offline_ultralytics

    offline_ultralytics(workdir / ".ultralytics")
    from ultralytics import YOLO

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = YOLO("yolo11n.yaml").export(
            format="onnx", imgsz=imgsz, opset=17, dynamic=False, device="cpu", verbose=False
        )
    target = workdir / "model.onnx"
    shutil.move(str(out), target)
    return target


def run_vision_label(onnx: Path, src: Path, out: Path, args: argparse.Namespace) -> float:
    from vision_core.config import load_config
    from vision_core.kernel import VisionKernel

    shutil.rmtree(out, ignore_errors=True)
    cfg = load_config(
        None,
        [
            f"run.workdir={out.parent / 'wd'}",
            f"data.unlabeled_dir={src}",
            f"data.labeled_dir={out}",
            f"infer.model_path={onnx}",
            f"infer.conf={args.conf}",
            f"infer.iou={args.iou}",
            f"infer.max_det={args.max_det}",
            "autolabel.on_conflict=overwrite",
            f"autolabel.workers={args.workers}",
        ],
    )
    t0 = time.perf_counter()
    res = VisionKernel(cfg, console=False).run_autolabel("model")
    wall = time.perf_counter() - t0
    assert res.ok, res.error
    return wall


def run_ultralytics(model: object, src: Path, out: Path, args: argparse.Namespace) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    for _ in model.predict(  # type: ignore[attr-defined]
        source=str(src),
        save_txt=True,
        imgsz=args.imgsz,
        conf=args.conf,
        iou=args.iou,
        max_det=args.max_det,
        device="cpu",
        stream=True,
        verbose=False,
        project=str(out.parent),
        name=out.name,
        exist_ok=True,
    ):
        pass
    return time.perf_counter() - t0


def _count(labels: Path) -> tuple[int, int]:
    """(label files with at least one box, boxes)."""
    sizes = [len(p.read_text().splitlines()) for p in labels.rglob("*.txt")]
    return sum(1 for n in sizes if n), sum(sizes)


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--onnx", type=Path, help="an ONNX YOLO model (default: export yolo11n)")
    ap.add_argument("--imgsz", type=int, default=320)
    ap.add_argument("--images", type=int, default=120)
    ap.add_argument("--image-size", type=int, default=640, help="side of the test images")
    ap.add_argument(
        "--conf", type=float, default=0.005, help="low: the untrained model then finds boxes"
    )
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--max-det", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2, help="vision-label decode threads")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    from vision_core.synth import generate_unlabeled

    work = Path(tempfile.mkdtemp(prefix="bench-label-"))
    os.environ.setdefault("YOLO_CONFIG_DIR", str(work / ".ultralytics"))
    try:
        onnx = args.onnx or export_untrained(work, args.imgsz)
        src = work / "images"
        generate_unlabeled(src, work / "truth", count=args.images, imgsz=args.image_size, seed=3)
        from vision_train.ultralytics_env import offline_ultralytics

        offline_ultralytics(work / ".ultralytics")
        from ultralytics import YOLO

        model = YOLO(str(onnx), task="detect")
        first = sorted(src.glob("*.jpg"))[0]
        model.predict(source=str(first), imgsz=args.imgsz, device="cpu", verbose=False)
        vl, ul = [], []
        for _ in range(args.rounds):
            vl.append(run_vision_label(onnx, src, work / "vl" / "out", args))
            ul.append(run_ultralytics(model, src, work / "ul" / "out", args))
        n_vl, b_vl = _count(work / "vl" / "out" / "labels")
        n_ul, b_ul = _count(work / "ul" / "out" / "labels")
        best_vl, best_ul = min(vl), min(ul)
        rate_vl, rate_ul = args.images / best_vl, args.images / best_ul
        print(
            f"\n{args.images} images {args.image_size}x{args.image_size} JPEG, model "
            f"{onnx.name} at {args.imgsz}, conf {args.conf}, CPU threads {os.cpu_count()}, "
            f"best of {args.rounds}"
        )
        print(f"{'tool':<40}{'s':>7}{'images/s':>10}{'non-empty files':>17}{'boxes':>7}")
        print(f"{'vision-label model':<40}{best_vl:>7.2f}{rate_vl:>10.1f}{n_vl:>17}{b_vl:>7}")
        row = f"{'ultralytics predict(save_txt=True)':<40}{best_ul:>7.2f}{rate_ul:>10.1f}"
        print(f"{row}{n_ul:>17}{b_ul:>7}")
        print(f"ratio vision-label / ultralytics: {rate_vl / rate_ul:.2f}x")
        print("(vision-label also writes an empty file per image without detections)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
