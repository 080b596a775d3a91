"""A synthetic YOLO detection dataset: simple filled shapes with exact boxes.

No dataset can be downloaded here, so tests and the demo generate one. Everything is
deterministic by seed. Classes: 0 circle, 1 square, 2 triangle. Shapes are drawn without
anti-aliasing, so each box is exactly the shape's pixel extent.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from vision_core.errors import require
from vision_core.fsutil import atomic_write_bytes, atomic_write_text

CLASS_NAMES: dict[int, str] = {0: "circle", 1: "square", 2: "triangle"}


@dataclass(frozen=True, slots=True)
class Box:
    class_id: int
    x1: int
    y1: int
    x2: int
    y2: int

    def yolo_line(self, w: int, h: int) -> str:
        """`cls cx cy w h` normalised, with x2/y2 as exclusive pixel edges."""
        cx = (self.x1 + self.x2) / 2 / w
        cy = (self.y1 + self.y2) / 2 / h
        return f"{self.class_id} {cx:.6f} {cy:.6f} {(self.x2 - self.x1) / w:.6f} {(self.y2 - self.y1) / h:.6f}"


def render_scene(
    rng: object,
    width: int,
    height: int,
    max_objects: int,
    object_size: tuple[int, int] | None = None,
) -> tuple[object, list[Box]]:
    """Draw one image (BGR uint8) and return it with its exact boxes.

    object_size: (min, max) shape size in pixels; default 1/8 to 1/3 of the short side.
    """
    require("cv2", "vision-core[infer]", "synthetic data")
    import numpy as np

    from vision_core.geometry import box_iou

    assert isinstance(rng, np.random.Generator)
    # smooth two-colour gradient background plus mild noise
    c0 = rng.integers(0, 256, 3).astype(np.float32)
    c1 = rng.integers(0, 256, 3).astype(np.float32)
    t = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    img = (c0 * (1 - t) + c1 * t) * np.ones((height, 1, 1), np.float32)
    img += rng.normal(0, 8, img.shape).astype(np.float32)
    canvas = np.clip(img, 0, 255).astype(np.uint8)

    boxes: list[Box] = []
    short = min(width, height)
    n = int(rng.integers(1, max_objects + 1))
    for _ in range(n * 10):
        if len(boxes) >= n:
            break
        cls = int(rng.integers(0, 3))
        lo, hi = object_size or (max(8, short // 8), max(10, short // 3))
        size = int(rng.integers(lo, hi))
        x0 = int(rng.integers(0, width - size))
        y0 = int(rng.integers(0, height - size))
        apex = int(rng.integers(0, size)) if cls == 2 else 0
        box = shape_box(cls, x0, y0, size)
        if boxes and box_iou([box], [(b.x1, b.y1, b.x2, b.y2) for b in boxes]).max() > 0.0:
            continue
        # a colour far from the local background so every shape is visible
        bg = canvas[box[1] : box[3], box[0] : box[2]].reshape(-1, 3).mean(0)
        colour = np.where(bg > 127, rng.integers(0, 60, 3), rng.integers(195, 256, 3))
        draw_shape(canvas, cls, x0, y0, size, tuple(int(c) for c in colour), apex)
        # exact extent from the drawn pixels (what the eye and the model see)
        boxes.append(Box(cls, *box))
    return canvas, boxes


def shape_box(cls: int, x0: int, y0: int, size: int) -> tuple[int, int, int, int]:
    """The exact pixel extent (x1, y1, x2, y2; x2/y2 exclusive) `draw_shape` covers."""
    if cls == 0:
        d = 2 * (size // 2) + 1
        return (x0, y0, x0 + d, y0 + d)
    return (x0, y0, x0 + size, y0 + size)


def draw_shape(
    canvas: object,
    cls: int,
    x0: int,
    y0: int,
    size: int,
    colour: tuple[int, ...],
    apex: int = 0,
) -> None:
    """Draw shape `cls` (0 circle, 1 square, 2 triangle) with its box's top-left at
    (x0, y0), without anti-aliasing; a triangle's apex sits `apex` px right of x0.
    Parts outside the canvas are clipped (OpenCV draws what fits)."""
    import cv2
    import numpy as np

    assert isinstance(canvas, np.ndarray)
    if cls == 0:
        r = size // 2
        cv2.circle(canvas, (x0 + r, y0 + r), r, colour, thickness=-1, lineType=cv2.LINE_8)
    elif cls == 1:
        cv2.rectangle(canvas, (x0, y0), (x0 + size - 1, y0 + size - 1), colour, thickness=-1)
    else:
        pts = np.array(
            [[x0 + apex, y0], [x0, y0 + size - 1], [x0 + size - 1, y0 + size - 1]], np.int32
        )
        cv2.fillPoly(canvas, [pts], colour, lineType=cv2.LINE_8)


def _write_split(
    root: Path,
    split: str,
    count: int,
    imgsz: int,
    max_objects: int,
    seed: int,
    object_size: tuple[int, int] | None = None,
) -> None:
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    for i in range(count):
        img, boxes = render_scene(rng, imgsz, imgsz, max_objects, object_size)
        ok, buf = cv2.imencode(".png", img)
        assert ok
        stem = f"{split}_{i:05d}"
        atomic_write_bytes(root / "images" / split / f"{stem}.png", buf.tobytes(), fsync=False)
        text = "".join(b.yolo_line(imgsz, imgsz) + "\n" for b in boxes)
        atomic_write_text(root / "labels" / split / f"{stem}.txt", text, fsync=False)


def generate_dataset(
    out_dir: str | Path,
    *,
    train_images: int = 120,
    val_images: int = 40,
    imgsz: int = 320,
    seed: int = 0,
    max_objects: int = 4,
    object_size: tuple[int, int] | None = None,
) -> Path:
    """Write a YOLO dataset (images/, labels/, dataset.yaml) and return dataset.yaml's path.

    Regenerating with the same arguments gives byte-identical files.
    """
    root = Path(out_dir).resolve()
    _write_split(root, "train", train_images, imgsz, max_objects, seed, object_size)
    _write_split(root, "val", val_images, imgsz, max_objects, seed + 1_000_003, object_size)
    # no `path` key: ultralytics then resolves train/val against this file's folder, so the
    # dataset can be copied or moved as a whole
    meta = {
        "train": "images/train",
        "val": "images/val",
        "names": dict(CLASS_NAMES),
    }
    return atomic_write_text(root / "dataset.yaml", yaml.safe_dump(meta, sort_keys=False))


def generate_unlabeled(
    out_dir: str | Path,
    truth_dir: str | Path,
    *,
    count: int = 20,
    imgsz: int = 320,
    seed: int = 7,
    max_objects: int = 4,
) -> Path:
    """Images to autolabel (out_dir) and their true labels kept apart (truth_dir)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    out, truth = Path(out_dir), Path(truth_dir)
    for i in range(count):
        img, boxes = render_scene(rng, imgsz, imgsz, max_objects)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        atomic_write_bytes(out / f"img_{i:05d}.jpg", buf.tobytes(), fsync=False)
        text = "".join(b.yolo_line(imgsz, imgsz) + "\n" for b in boxes)
        atomic_write_text(truth / f"img_{i:05d}.txt", text, fsync=False)
    atomic_write_text(truth / "classes.txt", "".join(f"{n}\n" for n in CLASS_NAMES.values()))
    return out


def generate_video(
    path: str | Path,
    *,
    frames: int = 60,
    width: int = 640,
    height: int = 360,
    fps: float = 15.0,
    seed: int = 3,
) -> Path:
    """A video of shapes drifting across a background (for edge runs)."""
    require("cv2", "vision-core[infer]", "synthetic video")
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    base, _ = render_scene(rng, width + frames * 2, height, 6)
    assert isinstance(base, np.ndarray)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.tmp{target.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():  # pragma: no cover - codec missing
        raise RuntimeError(f"cannot write video {target}")
    try:
        for i in range(frames):
            writer.write(np.ascontiguousarray(base[:, i * 2 : i * 2 + width]))
    finally:
        writer.release()
    tmp.replace(target)
    return target


def read_dataset_names(dataset_yaml: str | Path) -> dict[int, str]:
    data = yaml.safe_load(Path(dataset_yaml).read_text(encoding="utf-8")) or {}
    names = data.get("names", {})
    if isinstance(names, list):
        return dict(enumerate(map(str, names)))
    return {int(k): str(v) for k, v in names.items()}
