"""ONNX Runtime object detection: YOLO and Faster R-CNN exports behind one `Detector`.

Needs the `infer` extra (numpy, onnxruntime, opencv-python-headless); never torch.
"""

from vision_core.errors import require

for _module in ("numpy", "cv2", "onnxruntime"):  # a clear message instead of an ImportError
    require(_module, "vision-core[infer]", "ONNX inference")
del _module

from vision_core.infer.base import Detector, Prepared  # noqa: E402
from vision_core.infer.factory import (  # noqa: E402
    detect_arch,
    detector_from_config,
    latest_model,
    load_detector,
)
from vision_core.infer.faster_rcnn import FasterRCNNDetector  # noqa: E402
from vision_core.infer.letterbox import Letterboxed, letterbox, scale_boxes  # noqa: E402
from vision_core.infer.nms import batched_nms, nms  # noqa: E402
from vision_core.infer.session import create_session, read_metadata  # noqa: E402
from vision_core.infer.yolo import YoloDetector  # noqa: E402

__all__ = [
    "Detector",
    "FasterRCNNDetector",
    "Letterboxed",
    "Prepared",
    "YoloDetector",
    "batched_nms",
    "create_session",
    "detect_arch",
    "detector_from_config",
    "latest_model",
    "letterbox",
    "load_detector",
    "nms",
    "read_metadata",
    "scale_boxes",
]
