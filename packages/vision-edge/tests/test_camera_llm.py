"""A camera that drops and comes back (a capture test double), and llm mode against the
OpenAI-compatible test server (real HTTP, real openai client)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.fixtures.llm_server import FakeLLM, Fault
from vision_core.config import load_config
from vision_core.kernel import RunResult, VisionKernel
from vision_core.logging import read_jsonl
from vision_core.media import read_image
from vision_edge.deploy import run_edge_llm, run_edge_local

from .conftest import run_edge, video_sets


class FakeCapture:
    """cv2.VideoCapture's surface: `frames` good reads, then a failed read (a drop)."""

    def __init__(self, images: list[np.ndarray], frames: int, opened: bool = True) -> None:
        self.images, self.left, self.opened = images, frames, opened
        self.released = False
        self.n = 0

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if not self.opened or self.left <= 0:
            return False, None
        self.left -= 1
        self.n += 1
        return True, self.images[self.n % len(self.images)].copy()

    def release(self) -> None:
        self.released = True


def _run(cfg_sets: list[str], fn: Callable[..., dict[str, Any]], **kw: Any) -> RunResult:
    cfg = load_config(None, cfg_sets)
    return VisionKernel(cfg, console=False).run_callable(
        "deploy-edge", "edge", lambda ctx: fn(ctx, install_signals=False, **kw)
    )


def test_lost_camera_is_reopened_and_the_run_goes_on(
    tmp_path: Path, trained_yolo: Any, val_images: Path
) -> None:
    images = [read_image(p) for p in sorted(val_images.glob("*.png"))[:4]]
    script = [
        FakeCapture(images, 5),  # 5 frames, then the stream drops
        FakeCapture(images, 0, opened=False),  # the camera is not back yet
        FakeCapture(images, 0, opened=False),
        FakeCapture(images, 100),  # back
    ]
    opened: list[int | str] = []

    def factory(target: int | str) -> FakeCapture:
        opened.append(target)
        return script.pop(0)

    res = _run(
        [
            f"run.workdir={tmp_path / 'wd'}",
            f"infer.model_path={trained_yolo.onnx}",
            "deploy.edge.source=camera",
            "deploy.edge.camera=rtsp://10.0.0.7/stream1",
            "deploy.edge.max_frames=12",
            "deploy.edge.reconnect_max_backoff_sec=0.2",
            "deploy.stats.endpoint=",
        ],
        run_edge_local,
        capture_factory=factory,
    )
    assert res.ok, res.error
    m = res.run_context.metrics
    assert m["frames"] == 12
    assert m["reconnects"] == 3
    assert opened == ["rtsp://10.0.0.7/stream1"] * 4
    logged = [e for e in read_jsonl(res.run_context.run_dir / "log.jsonl")
              if e["event"] == "edge.camera_reconnect"]  # fmt: skip
    assert [e["attempt"] for e in logged] == [1, 2, 3]
    assert "capture dropped" in logged[0]["message"]
    assert "cannot open capture" in logged[1]["message"]


def _llm_sets(tmp_path: Path, llm: FakeLLM, trained_yolo: Any, *extra: str) -> list[str]:
    return [
        f"run.workdir={tmp_path / 'wd'}",
        "deploy.edge.mode=llm",
        f"data.yolo_dataset_dir={trained_yolo.dataset}",  # the class names
        f"autolabel.llm.base_url={llm.url}",
        "autolabel.llm.model=test-vision",
        "autolabel.llm.api_key_env=",
        "autolabel.llm.max_retries=2",
        "autolabel.llm.retry_backoff_sec=0.01",
        "autolabel.llm.timeout_sec=5",
        "deploy.stats.endpoint=",
        *extra,
    ]


def test_llm_mode_on_images_with_a_bad_answer_and_a_429(
    tmp_path: Path, trained_yolo: Any, llm_server: FakeLLM, mixed_folder: tuple[Path, list[Path]]
) -> None:
    folder, good = mixed_folder
    truth_dir = Path(trained_yolo.dataset) / "labels" / "val"
    shas = {p.name: llm_server.register(p, truth_dir / f"{p.stem}.txt") for p in good}
    bad = good[2]
    llm_server.fail_image(shas[bad.name], *[Fault("malformed")] * 3)
    llm_server.fail_next(Fault("status", status=429, retry_after=0.05))
    res = run_edge(
        tmp_path / "wd",
        *_llm_sets(tmp_path, llm_server, trained_yolo,
                   "deploy.edge.source=images", f"deploy.edge.images_dir={folder}",
                   "autolabel.llm.max_requests_per_sec=50"),
    )  # fmt: skip
    assert res.proc.returncode == 0, res.output
    m = res.metrics
    assert m["frames"] == 7
    assert m["dropped"] == {"unreadable": 2, "llm_failed": 1}
    truth_lines = sum(
        sum(1 for ln in (truth_dir / f"{p.stem}.txt").read_text().splitlines() if ln.strip())
        for p in good
        if p != bad
    )
    assert m["detections_total"] == truth_lines
    assert m["engine"]["retries"] >= 1  # the 429 was retried
    assert m["events_committed"] == 7
    (failed,) = [e for e in m["errors"] if e["reason"] == "llm_failed"]
    assert bad.name in res.proc.stderr + (res.run_dir / "log.jsonl").read_text()  # type: ignore[operator]
    assert failed["frame_index"] >= 0 and failed["error"]


def test_llm_mode_samples_a_live_camera_to_the_qps_limit(
    tmp_path: Path, trained_yolo: Any, llm_server: FakeLLM, val_images: Path
) -> None:
    images = [read_image(p) for p in sorted(val_images.glob("*.png"))[:4]]
    res = _run(
        _llm_sets(tmp_path, llm_server, trained_yolo,
                  "deploy.edge.source=camera", "deploy.edge.max_frames_per_sec=30",
                  "deploy.edge.max_frames=45", "autolabel.llm.max_requests_per_sec=4",
                  "autolabel.llm.cache=false"),  # the frames repeat: ask for each
        run_edge_llm,
        capture_factory=lambda target: FakeCapture(images, 1000),
    )  # fmt: skip
    assert res.ok, res.error
    m = res.run_context.metrics
    sent = len(llm_server.calls)
    assert m["frames"] == sent  # each frame that was asked is processed
    assert m["frames"] + m["dropped"]["llm_sampled"] == 45
    # 45 frames at 30 fps take ~1.5 s: about 4 per second go to the LLM, never more
    assert 4 <= sent <= 4 * m["wall_sec"] + 2
    # spaced by the QPS period (the first call also opens the connection: not counted)
    gaps = np.diff([c.t for c in llm_server.calls])[1:]
    assert gaps.min() >= 0.25 * 0.8


def test_llm_mode_without_class_names_says_what_to_set(
    tmp_path: Path, llm_server: FakeLLM, synth_video: Path
) -> None:
    res = run_edge(
        tmp_path / "wd",
        "deploy.edge.mode=llm",
        *video_sets(synth_video),
        f"autolabel.llm.base_url={llm_server.url}",
        "autolabel.llm.api_key_env=",
        "deploy.stats.endpoint=",
        "data.yolo_dataset_dir=nowhere",
    )
    assert res.proc.returncode == 1
    assert "llm mode needs the class names" in res.output and "class_map" in res.output
