"""ONNX export (YOLO, Faster R-CNN), export checks and INT8 quantization."""
