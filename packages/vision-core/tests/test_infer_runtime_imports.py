"""OpenVINO is imported only when chosen; asked for and missing, the error names the extra."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys

    if sys.argv[2] == "block":  # a device without the openvino extra
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "openvino":
                    raise ModuleNotFoundError(f"No module named {{name!r}}")
                return None

        sys.meta_path.insert(0, Block())

    import numpy as np

    from vision_core.config import build_config
    from vision_core.errors import MissingDependencyError
    from vision_core.infer import available_runtimes, detector_from_config, load_detector

    image = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    out = {{"available": available_runtimes()}}
    out["default"] = len(load_detector(sys.argv[1], conf=0.001).predict(image))
    cfg = build_config({{"infer": {{"model_path": sys.argv[1], "runtime": "auto",
                                    "precision": "fp32", "conf": 0.001}}}})
    if sys.argv[2] == "block":  # auto with one runtime installed: nothing to measure
        out["auto"] = detector_from_config(cfg).runner.runtime
    out["openvino_after_default"] = "openvino" in sys.modules
    try:
        det = load_detector(sys.argv[1], runtime="openvino", conf=0.001)
        out["chosen"] = [det.runner.runtime, len(det.predict(image))]
    except MissingDependencyError as exc:
        out["error"] = str(exc)
    out["openvino_after_chosen"] = "openvino" in sys.modules
    print(json.dumps(out))
    """
)


def _run(model: Path, tmp_path: Path, mode: str) -> dict[str, object]:
    script = tmp_path / "device.py"
    script.write_text(SCRIPT.format(), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(script), str(model), mode],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.slow
def test_openvino_is_not_imported_unless_chosen(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    got = _run(tiny_yolo_onnx, tmp_path, "installed")
    assert got["available"] == ["onnxruntime", "openvino"]
    assert got["default"] and got["openvino_after_default"] is False
    assert got["chosen"] == ["openvino", got["default"]] and got["openvino_after_chosen"] is True


@pytest.mark.slow
def test_a_missing_runtime_names_the_extra_to_install(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    got = _run(tiny_yolo_onnx, tmp_path, "block")
    assert got["available"] == ["onnxruntime"] and got["auto"] == "onnxruntime"
    assert got["openvino_after_chosen"] is False
    err = str(got["error"])
    assert "python module 'openvino' is not installed" in err
    assert "infer.runtime = 'openvino'" in err and 'pip install "vision-edge[openvino]"' in err
    assert "vision-server[openvino]" in err


def test_openvino_sends_no_telemetry(tiny_yolo_onnx: Path, tmp_path: Path) -> None:
    """`import openvino` would send usage events to Google Analytics (its telemetry is on
    by default outside CI): running a model on it here reaches nothing beyond loopback."""
    from tests.fixtures.netguard import guarded_env

    netlog = tmp_path / "net.log"
    code = (
        "import sys, time, numpy as np\n"
        "from vision_core.infer import load_detector\n"
        "det = load_detector(sys.argv[1], runtime='openvino', conf=0.001)\n"
        "det.predict(np.zeros((120, 160, 3), np.uint8))\n"
        "import openvino as ov\n"
        "ov.save_model(ov.Core().read_model(sys.argv[1]), sys.argv[2])\n"
        "time.sleep(1.0)  # the telemetry sender is a background process: give it its chance\n"
        "print('ran on', det.runner.runtime)\n"
    )
    env = guarded_env(netlog)
    env.pop("CI", None)  # as on a device: OpenVINO's own CI opt-out does not apply
    res = subprocess.run(
        [sys.executable, "-c", code, str(tiny_yolo_onnx), str(tmp_path / "m.xml")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]
    assert "ran on openvino" in res.stdout
    assert not netlog.exists() or netlog.read_text() == "", netlog.read_text()
