"""The OpenVINO IR INT8 export (NNCF) of a trained YOLO: written, runnable, gated like ONNX INT8."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vision_core.infer import load_detector
from vision_core.infer.tune import agreement
from vision_core.media import read_image
from vision_train.dataset import validate_yolo_dataset
from vision_train.errors import ExportError

pytest.importorskip("nncf")
pytest.importorskip("openvino")


@pytest.mark.slow
def test_openvino_int8_ir_is_written_gated_and_runs_where_int8_is_looked_for(
    trained_yolo: Any, tmp_path: Path
) -> None:
    from vision_train.export.openvino import export_openvino_int8

    info = validate_yolo_dataset(trained_yolo.dataset)
    fp32 = tmp_path / "model.onnx"
    fp32.write_bytes(trained_yolo.onnx.read_bytes())
    report = export_openvino_int8(fp32, info.splits["train"][:32], tmp_path, info=info,
                                  max_map_drop=0.05)  # fmt: skip
    ir = tmp_path / "model-int8.xml"
    assert report["model_int8_ir"] == str(ir) and ir.is_file() and ir.with_suffix(".bin").is_file()
    assert report["calib_images"] == 32 and report["excluded_nodes"] > 5  # head tail in float
    assert not list(tmp_path.glob(".ov-int8-*"))  # staged files renamed into place
    # the same metrics as the ONNX INT8 export
    assert {"fp32", "int8", "latency_ms_p50", "speedup", "map50_drop", "problems"} <= set(report)
    drop = report["fp32"]["map50"] - report["int8"]["map50"]
    assert report["map50_drop"] == pytest.approx(drop, abs=2e-6) and drop <= 0.05
    assert report["int8"]["map50"] > 0.1

    # where infer.precision = int8 looks on OpenVINO; an .xml opens on OpenVINO by itself
    det = load_detector(fp32, runtime="openvino", precision="int8")
    assert Path(det.model_path) == ir and det.class_names == info.names  # type: ignore[attr-defined]
    direct = load_detector(ir)
    assert direct.runner.runtime == "openvino"  # type: ignore[attr-defined]
    images = [read_image(p) for p in info.splits["val"][:8]]
    ref = [load_detector(fp32).predict(im) for im in images]
    got = [det.predict(im) for im in images]
    assert sum(map(len, got)) > 0
    assert agreement(ref, got) > 0.3  # INT8 at 96 px moves boxes; the gate is mAP50 above


@pytest.mark.slow
def test_openvino_int8_gate_fails_or_falls_back_like_the_onnx_export(
    trained_yolo: Any, tmp_path: Path
) -> None:
    from vision_train.export.openvino import export_openvino_int8

    info = validate_yolo_dataset(trained_yolo.dataset)
    calib = info.splits["train"][:8]
    with pytest.raises(ExportError, match=r"loses .* mAP50 \(> export.max_map_drop -1"):
        export_openvino_int8(trained_yolo.onnx, calib, tmp_path / "a", info=info,
                             max_map_drop=-1.0, on_regression="fail")  # fmt: skip
    report = export_openvino_int8(trained_yolo.onnx, calib, tmp_path / "b", info=info,
                                  max_map_drop=-1.0, on_regression="fallback")  # fmt: skip
    assert report["fallback"] is True and report["model_int8_ir"] is None
    assert not list((tmp_path / "b").glob("*.xml"))  # nothing misnamed left: devices run FP32


def test_export_refuses_a_missing_model_or_no_calibration(tmp_path: Path) -> None:
    from vision_train.export.openvino import export_openvino_int8

    with pytest.raises(ExportError, match="FP32 model not found"):
        export_openvino_int8(tmp_path / "none.onnx", [tmp_path / "x.png"], tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ExportError, match="needs calibration images"):
        export_openvino_int8(tmp_path / "m.onnx", [], tmp_path)
