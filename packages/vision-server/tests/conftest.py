"""vision-server fixtures: small ONNX models, settings, a fake stats endpoint, live servers.

- `graph_model`: a hand-made YOLO-layout graph (dynamic batch, 32x32 input, 3 classes)
  whose boxes are read from the image's pixels: instant to build, deterministic, and it
  batches. Most handler tests use it.
- `tiny_yolo_batch_onnx`: the shared tiny YOLO export with a fixed 160x160 input and a
  symbolic batch dim (what a server wants: fixed letterbox, batched runs).
- `serve`: `vision-server serve` as a subprocess on a free loopback port.
- `fake_stats` (tests/fixtures/fake_stats.py): a scripted stand-in for vision-stats' ingest.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from tests.fixtures.services import free_port, wait_healthy
from vision_core.config import build_config
from vision_server.settings import ServerSettings

API_KEY = "server-test-key-0123456789"
from tests.fixtures.services import STATS_KEY  # noqa: E402 - the key the shared fake_stats checks

NAMES = {0: "circle", 1: "square", 2: "triangle"}
GRAPH_SIZE = 32
GRAPH_BOXES = 16


def encode(image: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (
        struct.pack(">I", len(payload))
        + kind
        + payload
        + struct.pack(">I", zlib.crc32(kind + payload))
    )


def huge_png(width: int, height: int) -> bytes:
    """A well-formed PNG header declaring width x height, with a few bytes of data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def huge_jpeg(width: int, height: int) -> bytes:
    """A JPEG whose frame header (SOF0) declares width x height; a token scan, then EOI."""
    sof = struct.pack(">BHHB", 8, height, width, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    sos = b"\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00"
    return (
        b"\xff\xd8"
        + b"\xff\xc0" + struct.pack(">H", len(sof) + 2) + sof
        + b"\xff\xda" + struct.pack(">H", len(sos) + 2) + sos
        + b"\x00" * 16
        + b"\xff\xd9"
    )  # fmt: skip


class Kit:
    """Frame builders for tests (a fixture, since test modules cannot import conftest)."""

    encode = staticmethod(encode)
    huge_png = staticmethod(huge_png)
    huge_jpeg = staticmethod(huge_jpeg)

    @staticmethod
    def graph_image(boxes: list[tuple[int, float, float, float, float, float]]) -> np.ndarray:
        return graph_image(boxes)

    @staticmethod
    def scene(width: int = 320, height: int = 240, seed: int = 0) -> np.ndarray:
        """A synthetic shapes frame (BGR)."""
        from vision_core.synth import render_scene

        rng = np.random.default_rng(seed)
        return np.ascontiguousarray(np.asarray(render_scene(rng, width, height, 4)[0]))


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit


def _make_graph(path: Path) -> Path:
    """images [batch, 3, 32, 32] -> output0 [batch, 7, 16]: the first 112 values of each image.

    Row 0 of the R plane (the image's last BGR channel) holds cx of the 16 boxes, then cy,
    w, h, and three class-score rows: draw them with `graph_image`.
    """
    import onnx
    from onnx import TensorProto, helper

    n = 7 * GRAPH_BOXES
    nodes = [
        helper.make_node("Flatten", ["images"], ["flat"], axis=1),
        helper.make_node("Slice", ["flat", "starts", "ends", "axes"], ["part"]),
        helper.make_node("Reshape", ["part", "shape"], ["output0"]),
    ]
    inits = [
        helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
        helper.make_tensor("ends", TensorProto.INT64, [1], [n]),
        helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
        helper.make_tensor("shape", TensorProto.INT64, [3], [0, 7, GRAPH_BOXES]),
    ]
    graph = helper.make_graph(
        nodes,
        "graph_model",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 7, GRAPH_BOXES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in {"names": repr(NAMES), "task": "detect", "stride": "32"}.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def graph_image(boxes: list[tuple[int, float, float, float, float, float]]) -> np.ndarray:
    """A 32x32 BGR image that `graph_model` reads as these boxes.

    Each box is (class_id, cx, cy, w, h, score) in model pixels (values / 255 * 255: the
    model sees pixel / 255, so a value v is drawn as round(v * 255) clipped to 0..255,
    i.e. coordinates in 0..1 px and scores 0..1). Keep them small: they are model pixels.
    """
    img = np.zeros((GRAPH_SIZE, GRAPH_SIZE, 3), np.uint8)
    flat = img[:, :, 2].reshape(-1)  # the R plane, row-major: what Flatten reads first
    for k, (cls, cx, cy, w, h, score) in enumerate(boxes):
        for row, value in enumerate((cx, cy, w, h)):
            flat[row * GRAPH_BOXES + k] = round(value * 255)
        flat[(4 + cls) * GRAPH_BOXES + k] = round(score * 255)
    img[:, :, 2] = flat.reshape(GRAPH_SIZE, GRAPH_SIZE)
    return img


@pytest.fixture(scope="session")
def graph_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _make_graph(tmp_path_factory.mktemp("graph") / "graph.onnx")


@pytest.fixture(scope="session")
def tiny_yolo_batch_onnx(
    tiny_yolo_onnx_dynamic: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The dynamic tiny YOLO export with H and W fixed to 160: (batch, 3, 160, 160)."""
    import onnx

    model = onnx.load(str(tiny_yolo_onnx_dynamic))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value = 160
    dims[3].dim_value = 160
    path = tmp_path_factory.mktemp("batch") / "tiny_yolo_batch.onnx"
    onnx.save(model, str(path))
    return path


SettingsFactory = Callable[..., ServerSettings]


@pytest.fixture
def make_settings(graph_model: Path, tmp_path: Path) -> SettingsFactory:
    """ServerSettings from config overrides (dotted keys), key API_KEY, no stats endpoint."""

    def make(
        model: Path | None = None, environ: dict[str, str] | None = None, **keys: Any
    ) -> ServerSettings:
        raw: dict[str, Any] = {
            "run": {"workdir": str(tmp_path / "work")},
            "infer": {"model_path": str(model or graph_model), "conf": 0.25},
            "deploy": {"stats": {"endpoint": ""}},
        }
        for dotted, value in keys.items():
            node = raw
            *parents, leaf = dotted.split("__")
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        env = {"VISION_INGEST_API_KEY": API_KEY, "VISION_STATS_API_KEY": STATS_KEY}
        return ServerSettings.from_config(
            build_config(raw), environ=env if environ is None else environ
        )

    return make


# -- a stats endpoint of our own (vision-stats is written in parallel) --------------------------


# -- `vision-server serve` as a subprocess --------------------------------------------------------


@dataclass
class LiveServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    workdir: Path
    headers: dict[str, str] = field(default_factory=lambda: {"X-API-Key": API_KEY})

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(2)  # SIGINT, as Ctrl-C
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)


def start_server(
    tmp_path: Path, *args: str, env: dict[str, str] | None = None, wait: float = 60.0
) -> LiveServer:
    port = free_port()
    workdir = tmp_path / f"work-{port}"
    log = tmp_path / f"serve-{port}.log"
    exe = Path(sys.executable).parent / "vision-server"
    full_env = {
        **os.environ,
        "VISION_INGEST_API_KEY": API_KEY,
        "VISION_STATS_API_KEY": STATS_KEY,
        **(env or {}),
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(exe), "serve", "--port", str(port), "--set", f"run.workdir={workdir}", *args],
            stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=tmp_path,
        )  # fmt: skip
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log, workdir)
    wait_healthy(
        "vision-server serve", proc, f"{server.url}/health", wait, server.output, server.stop
    )
    return server


@pytest.fixture
def serve(tmp_path: Path, services: Callable[..., LiveServer]) -> Callable[..., LiveServer]:
    """`serve(*args, env=, wait=)`: `vision-server serve ARGS`, stopped after the test."""

    def start(*args: str, env: dict[str, str] | None = None, wait: float = 60.0) -> LiveServer:
        return services(start_server, tmp_path, *args, env=env, wait=wait)

    return start


@pytest.fixture
def two_worker_server(serve: Callable[..., LiveServer], graph_model: Path) -> LiveServer:
    """`vision-server serve --workers 2` with `graph_model`, no stats endpoint."""
    return serve(
        "--workers", "2",
        "--set", f"infer.model_path={graph_model}",
        "--set", "deploy.stats.endpoint=",
        wait=90,
    )  # fmt: skip


@pytest.fixture(scope="module")
def live_graph_server(
    graph_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """`vision-server serve` with `graph_model` (one per test module), no stats endpoint."""
    server = start_server(
        tmp_path_factory.mktemp("live"),
        "--set", f"infer.model_path={graph_model}",
        "--set", "deploy.stats.endpoint=",
    )  # fmt: skip
    try:
        yield server
    finally:
        server.stop()
