"""The batcher: groups concurrent frames, bounds its queue, never blocks the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from vision_core.types import Detection
from vision_server.batcher import Batcher
from vision_server.errors import InferenceFailedError, QueueFullError


class FakeModel:
    """Returns one detection per image carrying its first pixel; records batch sizes."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail = delay, fail
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, images: Sequence[np.ndarray]) -> list[list[Detection]]:
        self.threads.add(threading.current_thread().name)
        self.batches.append(len(images))
        if self.delay:
            time.sleep(self.delay)  # a busy model: blocks its thread, not the loop
        if self.fail:
            raise RuntimeError("model exploded")
        return [
            [Detection(class_id=0, class_name="x", score=0.5, xyxy=(0, 0, float(im[0, 0, 0]), 1))]
            for im in images
        ]


def _frame(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, np.uint8)


async def _submit(batcher: Batcher[int], value: int) -> float:
    ticket = batcher.admit()
    result = await batcher.submit(ticket, _frame(value), value)
    return result.detections[0].xyxy[2]


def test_concurrent_frames_share_model_runs_in_order() -> None:
    model = FakeModel(delay=0.02)
    seen: list[list[int]] = []

    async def main() -> list[float]:
        b: Batcher[int] = Batcher(
            model,
            max_batch=4,
            max_wait_ms=20,
            queue_size=64,
            on_batch=lambda metas, dets, done: seen.append(list(metas)),
        )
        b.start()
        try:
            return await asyncio.gather(*(_submit(b, v) for v in range(10)))
        finally:
            await b.close()

    results = asyncio.run(main())
    assert results == [float(v) for v in range(10)]  # each frame gets its own answer
    assert sum(model.batches) == 10 and max(model.batches) == 4
    assert len(model.batches) <= 4  # 10 frames in at most 4 runs, not 10
    assert sorted(v for batch in seen for v in batch) == list(range(10))
    assert model.threads == {"inference_0"}  # one dedicated inference thread


def test_a_lone_frame_is_not_held_for_max_wait() -> None:
    async def main() -> float:
        b: Batcher[int] = Batcher(FakeModel(), max_batch=8, max_wait_ms=2000, queue_size=4)
        b.start()
        try:
            t0 = time.perf_counter()
            await _submit(b, 1)
            return time.perf_counter() - t0
        finally:
            await b.close()

    assert asyncio.run(main()) < 0.5


def test_a_full_queue_answers_503_with_retry_after_at_once() -> None:
    async def main() -> None:
        b: Batcher[int] = Batcher(FakeModel(delay=0.2), max_batch=1, max_wait_ms=0, queue_size=3)
        b.start()
        try:
            tickets = [b.admit() for _ in range(3)]
            assert b.depth == 3
            with pytest.raises(QueueFullError) as err:
                b.admit()
            assert err.value.status_code == 503
            assert err.value.retry_after is not None and 1 <= err.value.retry_after <= 30
            assert "deploy.remote.queue_size" in str(err.value)
            tickets[0].release()
            tickets[0].release()  # idempotent
            assert b.depth == 2
            b.admit()
        finally:
            await b.close()

    asyncio.run(main())


def test_the_event_loop_runs_while_the_model_is_busy() -> None:
    async def main() -> float:
        b: Batcher[int] = Batcher(FakeModel(delay=0.5), max_batch=1, max_wait_ms=0, queue_size=8)
        b.start()
        try:
            work = asyncio.gather(*(_submit(b, v) for v in range(3)))
            await asyncio.sleep(0.05)
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)  # a /health handler would run here
            lag = time.perf_counter() - t0
            assert b.busy
            await work
            return lag
        finally:
            await b.close()

    assert asyncio.run(main()) < 0.1


def test_a_frame_whose_client_left_is_skipped() -> None:
    model = FakeModel(delay=0.1)

    async def main() -> None:
        b: Batcher[int] = Batcher(model, max_batch=1, max_wait_ms=0, queue_size=8)
        b.start()
        try:
            first = asyncio.ensure_future(_submit(b, 1))
            await asyncio.sleep(0.02)  # first is in the model now
            gone = asyncio.ensure_future(_submit(b, 2))
            await asyncio.sleep(0.01)
            gone.cancel()
            assert await first == 1.0
            assert await _submit(b, 3) == 3.0
            assert b.depth == 0
        finally:
            await b.close()

    asyncio.run(main())
    assert model.batches == [1, 1]  # frame 2 never reached the model


def test_a_model_failure_fails_the_batch_not_the_server() -> None:
    async def main() -> None:
        b: Batcher[int] = Batcher(FakeModel(fail=True), max_batch=4, max_wait_ms=0, queue_size=8)
        b.start()
        try:
            with pytest.raises(InferenceFailedError, match="model exploded"):
                await _submit(b, 1)
            assert b.depth == 0
        finally:
            await b.close()

    asyncio.run(main())


def test_closing_refuses_new_frames() -> None:
    async def main() -> None:
        b: Batcher[int] = Batcher(FakeModel(), max_batch=2, max_wait_ms=0, queue_size=8)
        b.start()
        await b.close()
        with pytest.raises(QueueFullError, match="shutting down"):
            b.admit()

    asyncio.run(main())


@pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"queue_size": 0}, {"max_wait_ms": -1}])
def test_bad_limits(kwargs: dict[str, float]) -> None:
    args: dict[str, float] = {"max_batch": 2, "queue_size": 2, "max_wait_ms": 1}
    with pytest.raises(ValueError):
        Batcher(FakeModel(), **{**args, **kwargs})  # type: ignore[arg-type]


def test_runners_run_batches_at_once() -> None:
    model = FakeModel(delay=0.3)

    async def main() -> float:
        b: Batcher[int] = Batcher(model, max_batch=2, max_wait_ms=0, queue_size=16, runners=2)
        b.start()
        try:
            t0 = time.perf_counter()
            got = await asyncio.gather(*(_submit(b, v) for v in range(4)))
            assert got == [0.0, 1.0, 2.0, 3.0]
            return time.perf_counter() - t0
        finally:
            await b.close()

    elapsed = asyncio.run(main())
    assert elapsed < 0.55  # two batches of 2 side by side, not 4 x 0.3 s nor 2 x 0.3 s in a row
    assert model.threads == {"inference_0", "inference_1"}
