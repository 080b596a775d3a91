"""The frame pipeline: results in input order, work in flight bounded, bad inputs reported
with their job, ConfigError fatal, stop honoured, infer on a pool only with runners > 1."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vision_core.errors import ConfigError, MediaError
from vision_core.media import Frame, read_frame
from vision_core.pipeline import Engine, FramePipeline, Outcome, ordered_map
from vision_core.types import Detection


def _frame(i: int) -> Frame:
    return Frame(i, np.full((8, 8, 3), i % 256, np.uint8), float(i))


class Recorder(Engine):
    """Records on which thread each half ran; infer takes `delay(i)` seconds."""

    concurrent = True

    def __init__(self, delay: Any = lambda i: 0.0, fail_on: int = -1) -> None:
        self.delay = delay
        self.fail_on = fail_on
        self.prepare_threads: set[str] = set()
        self.infer_threads: set[str] = set()
        self.in_model = 0
        self.most_in_model = 0
        self.warmed: list[int] = []
        self.lock = threading.Lock()

    def prepare(self, frame: Frame) -> int:
        self.prepare_threads.add(threading.current_thread().name)
        if frame.index == self.fail_on:
            raise ValueError(f"frame {frame.index} is bad")
        return frame.index * 10

    def infer(self, frame: Frame, item: Any) -> Outcome:
        with self.lock:
            self.infer_threads.add(threading.current_thread().name)
            self.in_model += 1
            self.most_in_model = max(self.most_in_model, self.in_model)
        time.sleep(self.delay(frame.index))  # a model that takes this long
        with self.lock:
            self.in_model -= 1
        det = Detection(class_id=0, class_name="x", score=0.5, xyxy=(0, 0, 1, float(item)))
        return Outcome([det])

    def warmup(self, frame: Frame) -> None:
        self.warmed.append(frame.index)


def test_ordered_map_keeps_order_and_bounds_the_window() -> None:
    started: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> int:
        with lock:
            started.append(i)
        time.sleep(0.02 if i % 3 == 0 else 0.0)  # out-of-order completion
        return i * i

    taken = []
    with ThreadPoolExecutor(4) as pool:
        for item, fut in ordered_map(work, range(20), pool=pool, window=3):
            with lock:
                assert len(started) <= item + 3  # never more than 3 ahead of the consumer
            taken.append((item, fut.result()))
    assert taken == [(i, i * i) for i in range(20)]


def test_ordered_map_inline_runs_each_item_when_reached_and_keeps_errors() -> None:
    def work(i: int) -> int:
        if i == 2:
            raise KeyError(i)
        return i

    out = list(ordered_map(work, range(4), pool=None, window=1))
    assert [x for x, _ in out] == [0, 1, 2, 3]
    assert isinstance(out[2][1].exception(), KeyError)
    assert out[3][1].result() == 3


def test_one_runner_infers_on_the_consuming_thread_in_order() -> None:
    engine = Recorder()
    pipe: FramePipeline[Frame] = FramePipeline(engine, runners=1, warmup=True)
    jobs = list(pipe.run(_frame(i) for i in range(12)))
    assert [j.input.index for j in jobs] == list(range(12))
    assert [j.outcome.detections[0].xyxy[3] for j in jobs if j.outcome] == [
        i * 10 for i in range(12)
    ]
    assert engine.infer_threads == {threading.current_thread().name}
    assert engine.prepare_threads and threading.current_thread().name not in engine.prepare_threads
    assert engine.warmed == [0]  # one warm-up run, on the first frame
    assert all(j.prepare_ms >= 0 and j.latency_ms >= j.prepare_ms for j in jobs)


def test_several_runners_overlap_in_the_model_and_keep_frame_order() -> None:
    # later frames finish first; results must still come in frame order
    engine = Recorder(delay=lambda i: 0.03 if i % 2 == 0 else 0.0)
    pipe: FramePipeline[Frame] = FramePipeline(engine, runners=3)
    jobs = list(pipe.run(_frame(i) for i in range(15)))
    assert [j.input.index for j in jobs] == list(range(15))
    assert engine.most_in_model >= 2  # frames really were in the model at once
    assert all(name.startswith("infer") for name in engine.infer_threads)


def test_runners_are_ignored_for_an_engine_that_is_not_concurrent() -> None:
    engine = Recorder()
    engine.concurrent = False
    pipe: FramePipeline[Frame] = FramePipeline(engine, runners=4)
    assert pipe.runners == 1
    list(pipe.run(_frame(i) for i in range(3)))
    assert engine.infer_threads == {threading.current_thread().name}


def test_a_bad_frame_is_reported_with_its_job_and_the_rest_go_on() -> None:
    engine = Recorder(fail_on=3)
    jobs = list(FramePipeline(engine).run(_frame(i) for i in range(6)))
    assert [j.input.index for j in jobs] == list(range(6))
    bad = jobs[3]
    assert bad.outcome is None and isinstance(bad.error, ValueError)
    assert all(j.outcome is not None for k, j in enumerate(jobs) if k != 3)


def test_an_infer_error_drops_that_frame_and_a_config_error_ends_the_run() -> None:
    class Flaky(Recorder):
        def infer(self, frame: Frame, item: Any) -> Outcome:
            if frame.index == 1:
                raise RuntimeError("boom")
            if frame.index == 4:
                raise ConfigError("deploy.remote.api_key_env: refused")
            return super().infer(frame, item)

    pipe: FramePipeline[Frame] = FramePipeline(Flaky())
    seen = []
    with pytest.raises(ConfigError, match="refused"):
        for job in pipe.run(_frame(i) for i in range(8)):
            seen.append(job)
    assert [j.input.index for j in seen] == [0, 1, 2, 3]
    assert seen[1].outcome is not None and seen[1].outcome.dropped == "error"
    assert "RuntimeError: boom" in (seen[1].outcome.error or "")


def test_files_are_opened_in_the_prepare_threads(tmp_path: Path) -> None:
    import cv2

    paths = []
    for i in range(5):
        p = tmp_path / f"{i}.png"
        cv2.imwrite(str(p), np.full((4, 6, 3), i, np.uint8))
        paths.append(p)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    paths.insert(2, tmp_path / "bad.png")
    engine = Recorder()
    pipe: FramePipeline[Path] = FramePipeline(engine, open=read_frame, prepare_workers=3)
    jobs = list(pipe.run(paths))
    assert [j.input for j in jobs] == paths
    assert isinstance(jobs[2].error, MediaError) and jobs[2].frame is None
    assert [j.frame.image.shape for j in jobs if j.frame] == [(4, 6, 3)] * 5
    assert all(j.frame.data and j.frame.data.startswith(b"\x89PNG") for j in jobs if j.frame)


def test_stop_ends_the_run_even_when_the_source_blocks_for_ever() -> None:
    """A camera whose read never returns must not hold the consumer: after stop() the run
    ends at once, the blocked reader is left behind (a daemon thread)."""
    release = threading.Event()

    def frozen_camera() -> Any:
        yield _frame(0)
        yield _frame(1)
        release.wait(60)  # a read that hangs
        yield _frame(2)

    pipe: FramePipeline[Frame] = FramePipeline(Recorder())
    got = []
    t0 = time.monotonic()
    for job in pipe.run(frozen_camera()):
        got.append(job.input.index)
        if len(got) == 2:
            threading.Timer(0.2, pipe.stop).start()  # a signal arrives while the read hangs
    elapsed = time.monotonic() - t0
    release.set()
    assert got == [0, 1]
    assert elapsed < 5.0  # not the 60 s the read would take
