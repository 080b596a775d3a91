"""vision-server on OpenVINO: the batcher's predict_batch runs on it, several runs at once."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from vision_core.infer import load_detector
from vision_core.infer.tune import agreement
from vision_core.logging import StructuredLogger
from vision_server.batcher import Batcher
from vision_server.errors import ServerConfigError
from vision_server.model import load_model
from vision_server.settings import ServerSettings

pytest.importorskip("openvino")


@pytest.mark.slow
def test_openvino_batches_through_the_same_predict_batch(
    make_settings: Callable[..., ServerSettings], tiny_yolo_batch_onnx: Path, kit: Any
) -> None:
    settings = make_settings(
        model=tiny_yolo_batch_onnx,
        infer__conf=0.001,
        infer__runtime="openvino",
        deploy__remote__runners=2,
    )
    loaded = load_model(settings)
    assert (loaded.runtime, loaded.precision, loaded.provider) == ("openvino", "fp32", "CPU")
    assert loaded.batching == "dynamic" and loaded.runners == 2
    assert loaded.detector.runner.streams == 2  # type: ignore[attr-defined]  # throughput mode
    frames = [kit.scene(240, 180, seed=i) for i in range(16)]
    sizes: list[int] = []

    async def serve() -> list[Any]:
        b: Batcher[int] = Batcher(
            loaded.detector.predict_batch,
            max_batch=4,
            max_wait_ms=20,
            queue_size=64,
            runners=loaded.runners,
            on_batch_size=sizes.append,
        )
        b.start()
        try:
            return list(
                await asyncio.gather(*(b.submit(b.admit(), f, i) for i, f in enumerate(frames)))
            )
        finally:
            await b.close()

    results = asyncio.run(serve())
    assert sum(sizes) == 16 and max(sizes) > 1  # frames shared OpenVINO runs
    local = load_detector(tiny_yolo_batch_onnx, conf=0.001)  # ONNX Runtime, one at a time
    want = [local.predict(f) for f in frames]
    assert sum(map(len, want)) > 0
    assert agreement(want, [r.detections for r in results]) >= 0.95


def test_a_runtime_the_server_lacks_is_a_config_error_naming_the_extra(
    make_settings: Callable[..., ServerSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vision_core.infer import runtimes

    monkeypatch.setattr(runtimes, "runtime_installed", lambda name: name == "onnxruntime")
    buf = io.StringIO()
    with pytest.raises(ServerConfigError, match=r"vision-server\[openvino\]"):
        load_model(make_settings(infer__runtime="openvino"), StructuredLogger(None, console=buf))
