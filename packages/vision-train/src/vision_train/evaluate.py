"""Evaluate an ONNX model on a YOLO dataset split with the vision-core runtime adapters.

The same code that runs on devices produces the detections, so the mAP reported here is
the mAP a device gets. Settings follow ultralytics val (conf 0.001, NMS IoU 0.7, 300 dets);
like ultralytics val, a box may count once per class above conf (multi-label NMS), the
standard mAP protocol; on devices a box keeps its best class.
Latency comparisons run models interleaved on the same images in one process.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from vision_core.formats.yolo import boxes_to_arrays, label_path_for, read_label_file
from vision_core.infer import load_detector
from vision_core.media import read_image
from vision_core.metrics import (
    DetectionMetrics,
    MetricAccumulator,
    detections_to_arrays,
)
from vision_train.dataset import DatasetInfo


def evaluate_onnx(
    model_path: Path,
    info: DatasetInfo,
    *,
    split: str = "val",
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
) -> DetectionMetrics:
    from vision_core.infer import YoloDetector

    detector = load_detector(
        str(model_path), conf=conf, iou=iou, max_det=max_det, class_map=info.names
    )
    if isinstance(detector, YoloDetector):
        detector.multi_label = True
    acc = MetricAccumulator(info.names)
    for image_path in info.splits[split]:
        img = read_image(image_path)
        h, w = img.shape[:2]
        dets = detector.predict(img)
        boxes, scores, cls = detections_to_arrays(dets)
        true_boxes, _, true_cls = boxes_to_arrays(read_label_file(label_path_for(image_path)), w, h)
        acc.add(boxes, scores, cls, true_boxes, true_cls)
    return acc.compute()


def compare_latency(
    models: dict[str, Path], images: Sequence[Path], *, rounds: int = 3, warmup: int = 2
) -> dict[str, float]:
    """p50 ms per image (preprocess + inference + postprocess) per model, interleaved.

    The sessions do not spin (create_session's default): with models run in turn, an idle
    session's spinning threads would take the cores from the next model.
    """
    detectors = {name: load_detector(str(path), conf=0.25) for name, path in models.items()}
    frames = [read_image(p) for p in images]
    for det in detectors.values():
        for img in frames[:warmup]:
            det.predict(img)
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for img in frames:
            for name, det in detectors.items():
                t0 = time.perf_counter()
                det.predict(img)
                times[name].append((time.perf_counter() - t0) * 1000.0)
    return {name: statistics.median(ts) for name, ts in times.items()}
