"""Wheels and installs: six wheels build; a device install stays light.

Builds every wheel with `uv build --all-packages`, then installs vision-edge (and then
vision-stats) with its sibling wheels into a fresh venv and checks what did NOT come in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = [
    "vision_core",
    "vision_train",
    "vision_label",
    "vision_edge",
    "vision_server",
    "vision_stats",
]
COMMANDS = ["vision-train", "vision-label", "vision-edge", "vision-server", "vision-stats"]

pytestmark = pytest.mark.slow


def _uv() -> str:
    uv = os.environ.get("UV") or shutil.which("uv")
    if not uv:
        pytest.fail("the uv binary is needed (pip install uv)")
    return uv


@pytest.fixture(scope="session")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [_uv(), "build", "--all-packages", "--wheel", "-o", str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    found = {p.name.split("-")[0]: p for p in out.glob("*.whl")}
    return found


def test_six_wheels_build(wheels: dict[str, Path]) -> None:
    assert sorted(wheels) == sorted(PACKAGES)
    import zipfile

    for name, whl in wheels.items():
        files = zipfile.ZipFile(whl).namelist()
        assert f"{name}/py.typed" in files, f"{whl.name} lacks py.typed"


def _fresh_venv(tmp_path: Path, wheels: list[Path] | list[str]) -> Path:
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    py = venv / "bin" / "python"
    env = {
        k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT"}
    }
    res = subprocess.run(
        [_uv(), "pip", "install", "-q", "--python", str(py), *map(str, wheels)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert res.returncode == 0, res.stderr
    return venv


def _absent(venv: Path, modules: list[str]) -> list[str]:
    code = "import importlib.util,sys; print(','.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code, *modules],
        capture_output=True,
        text=True,
        check=True,
    )
    return [m for m in out.stdout.strip().split(",") if m]


def test_device_install_of_vision_edge_is_light(tmp_path: Path, wheels: dict[str, Path]) -> None:
    venv = _fresh_venv(tmp_path, [wheels["vision_edge"], wheels["vision_core"]])
    # local and stream mode need no LLM client and no second runtime: openai comes only with
    # vision-edge[llm], openvino only with vision-edge[openvino]; HTTP stats need no MQTT
    # client: paho-mqtt comes only with vision-edge[mqtt]
    heavy = ["torch", "torchvision", "ultralytics", "litestar", "openai", "openvino", "paho"]
    assert _absent(venv, heavy) == []
    assert _absent(venv, ["onnxruntime", "cv2", "vision_edge"]) == [
        "onnxruntime",
        "cv2",
        "vision_edge",
    ]
    res = subprocess.run(
        [str(venv / "bin" / "vision-edge"), "--help"], capture_output=True, text=True
    )
    assert res.returncode == 0 and "Usage: vision-edge" in res.stdout
    # tracking runs on the device with numpy alone: scoring's libraries stay off it
    assert _absent(venv, ["scipy", "pandas", "motmetrics", "lap"]) == []
    track = (
        "from vision_core.track import ByteTracker, DetectionArray\n"
        "t = ByteTracker()\n"
        "for f in range(5): out = t.update(DetectionArray.of([[f, 0, f + 9, 9]], [0.9], [0]))\n"
        "print([x.track_id for x in out], [x.state for x in out])"
    )
    res = subprocess.run(
        [str(venv / "bin" / "python"), "-c", track], capture_output=True, text=True
    )
    assert res.returncode == 0 and res.stdout.strip() == "[1] ['confirmed']", res.stderr


def test_vision_edge_alone_runs_local_mode_on_images_and_video(
    tmp_path: Path,
    wheels: dict[str, Path],
    tiny_yolo_onnx: Path,
    synth_dataset: Path,
    synth_video: Path,
) -> None:
    """The device install (edge + core wheels only) runs the model on a folder and a video."""
    import json

    venv = _fresh_venv(tmp_path, [wheels["vision_edge"], wheels["vision_core"]])
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    common = [
        "--set", f"run.workdir={tmp_path / 'wd'}",
        "--set", f"infer.model_path={tiny_yolo_onnx}",
        "--set", "infer.conf=0.001",  # an untrained model: low scores, still detections
        "--set", "deploy.stats.endpoint=",
    ]  # fmt: skip
    sources = {
        "images": ["--set", f"deploy.edge.images_dir={synth_dataset / 'images' / 'val'}"],
        "video": ["--set", f"deploy.edge.video_path={synth_video}"],
    }
    for source, extra in sources.items():
        res = subprocess.run(
            [str(venv / "bin" / "vision-edge"), "run", *common,
             "--set", f"deploy.edge.source={source}", *extra],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        assert res.returncode == 0, res.stdout + res.stderr
        (run,) = [
            json.loads(p.read_text())
            for p in (tmp_path / "wd" / "runs").glob("*/metrics.json")
            if json.loads(p.read_text())["metrics"].get("source") == source
        ]
        assert run["status"] == "ok"
        assert run["metrics"]["frames"] == (16 if source == "images" else 24)
        assert run["metrics"]["detections_total"] > 0


def test_llm_mode_needs_the_llm_extra_and_runs_with_it(
    tmp_path: Path, wheels: dict[str, Path], llm_server: Any, synth_dataset: Path
) -> None:
    """Without the extra, llm mode says what to install; with vision-edge[llm] it runs."""
    import json

    val = synth_dataset / "images" / "val"
    for img in sorted(val.glob("*"))[:4]:
        llm_server.register(img, synth_dataset / "labels" / "val" / f"{img.stem}.txt")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    args = [
        "run",
        "--set", f"run.workdir={tmp_path / 'wd'}",
        "--set", "deploy.edge.mode=llm",
        "--set", f"deploy.edge.images_dir={val}",
        "--set", "deploy.edge.max_frames=4",
        "--set", "deploy.stats.endpoint=",
        "--set", f"autolabel.llm.base_url={llm_server.url}",
        "--set", "autolabel.llm.api_key_env=",
        "--set", "class_map=circle,square,triangle",
    ]  # fmt: skip
    light = _fresh_venv(tmp_path / "light", [wheels["vision_edge"], wheels["vision_core"]])
    res = subprocess.run(
        [str(light / "bin" / "vision-edge"), *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert res.returncode != 0
    assert 'pip install "vision-edge[llm]"' in res.stdout + res.stderr
    edge_llm = f"{wheels['vision_edge']}[llm]"
    full = _fresh_venv(tmp_path / "llm", [Path(edge_llm), wheels["vision_core"]])
    assert _absent(full, ["openai"]) == ["openai"]
    res = subprocess.run(
        [str(full / "bin" / "vision-edge"), *args],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    (run,) = [
        json.loads(p.read_text())
        for p in (tmp_path / "wd" / "runs").glob("*/metrics.json")
        if json.loads(p.read_text())["status"] == "ok"
    ]
    assert run["metrics"]["frames"] == 4 and run["metrics"]["detections_total"] > 0


def test_vision_edge_openvino_extra_adds_openvino_and_runs_local_mode_on_it(
    tmp_path: Path, wheels: dict[str, Path], tiny_yolo_onnx: Path, synth_dataset: Path
) -> None:
    """`pip install "vision-edge[openvino]"`: OpenVINO comes in (still no torch) and runs."""
    import json

    venv = _fresh_venv(tmp_path, [f"{wheels['vision_edge']}[openvino]", str(wheels["vision_core"])])
    assert _absent(venv, ["torch", "torchvision", "ultralytics", "litestar"]) == []
    assert _absent(venv, ["openvino", "onnxruntime"]) == ["openvino", "onnxruntime"]
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    res = subprocess.run(
        [str(venv / "bin" / "vision-edge"), "run",
         "--set", f"run.workdir={tmp_path / 'wd'}", "--set", f"infer.model_path={tiny_yolo_onnx}",
         "--set", "infer.runtime=openvino", "--set", "infer.conf=0.001",
         "--set", "deploy.stats.endpoint=", "--set", "deploy.edge.source=images",
         "--set", f"deploy.edge.images_dir={synth_dataset / 'images' / 'val'}"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout + res.stderr
    (run,) = [json.loads(p.read_text()) for p in (tmp_path / "wd" / "runs").glob("*/metrics.json")]
    assert run["status"] == "ok" and run["metrics"]["frames"] == 16
    assert run["metrics"]["detections_total"] > 0


def test_the_mqtt_extra_of_vision_edge_brings_paho_and_vision_server_offers_it(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    venv = _fresh_venv(tmp_path, [Path(f"{wheels['vision_edge']}[mqtt]"), wheels["vision_core"]])
    assert _absent(venv, ["paho", "litestar", "torch"]) == ["paho"]
    code = "from vision_core.stats.mqtt import MqttPublisher; print(MqttPublisher.__name__)"
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "MqttPublisher"
    import zipfile

    whl = wheels["vision_server"]
    with zipfile.ZipFile(whl) as zf:
        meta = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(meta).decode()
    assert "Provides-Extra: mqtt" in text
    assert any(
        line.startswith("Requires-Dist: vision-core[mqtt]") and "extra == 'mqtt'" in line
        for line in text.splitlines()
    )


def test_vision_stats_installs_without_torch_or_onnxruntime(
    tmp_path: Path, wheels: dict[str, Path]
) -> None:
    venv = _fresh_venv(tmp_path, [wheels["vision_stats"], wheels["vision_core"]])
    assert _absent(venv, ["torch", "ultralytics", "onnxruntime"]) == []
    assert _absent(venv, ["paho"]) == ["paho"]  # `vision-stats ingest-mqtt` works as installed
    res = subprocess.run(
        [str(venv / "bin" / "vision-stats"), "--version"], capture_output=True, text=True
    )
    assert res.returncode == 0 and "vision-stats, version" in res.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_and_version(command: str) -> None:
    exe = Path(sys.executable).parent / command
    help_ = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert help_.returncode == 0 and f"Usage: {command}" in help_.stdout
    ver = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert ver.returncode == 0 and ver.stdout.startswith(f"{command}, version ")


def test_bad_set_exits_2_with_the_key_path() -> None:
    exe = Path(sys.executable).parent / "vision-train"
    res = subprocess.run([str(exe), "--set", "train.epochs=ten"], capture_output=True, text=True)
    assert res.returncode == 2
    assert "train.epochs: expected an integer >= 1, got 'ten'" in res.stderr
