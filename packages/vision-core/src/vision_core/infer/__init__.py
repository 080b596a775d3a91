"""Object detection on ONNX models: YOLO and Faster R-CNN exports behind one `Detector`.

Needs the `infer` extra (numpy, onnxruntime, opencv-python-headless); never torch. The
graph runs on ONNX Runtime or, with the `openvino` extra, OpenVINO (a `Runner`); the
pre- and post-processing are the adapters' own, whatever runs the graph.
"""

from vision_core.errors import require

for _module in ("numpy", "cv2", "onnxruntime"):  # a clear message instead of an ImportError
    require(_module, "vision-core[infer]", "ONNX inference")
del _module

from vision_core.infer.base import Detector, Prepared  # noqa: E402
from vision_core.infer.configured import detector_from_config  # noqa: E402
from vision_core.infer.factory import detect_arch, latest_model, load_detector  # noqa: E402
from vision_core.infer.faster_rcnn import FasterRCNNDetector  # noqa: E402
from vision_core.infer.layout import YoloLayout, read_yolo_layout  # noqa: E402
from vision_core.infer.letterbox import Letterboxed, letterbox, scale_boxes  # noqa: E402
from vision_core.infer.nms import batched_nms, nms  # noqa: E402
from vision_core.infer.runner import OrtRunner, Runner, TensorInfo  # noqa: E402
from vision_core.infer.runtimes import available_runtimes, open_runner  # noqa: E402
from vision_core.infer.session import create_session, read_metadata  # noqa: E402
from vision_core.infer.yolo import YoloDetector  # noqa: E402

__all__ = [
    "Detector",
    "FasterRCNNDetector",
    "Letterboxed",
    "OrtRunner",
    "Prepared",
    "Runner",
    "TensorInfo",
    "YoloDetector",
    "YoloLayout",
    "available_runtimes",
    "batched_nms",
    "create_session",
    "detect_arch",
    "detector_from_config",
    "latest_model",
    "letterbox",
    "load_detector",
    "nms",
    "open_runner",
    "read_metadata",
    "read_yolo_layout",
    "scale_boxes",
]
