"""One ordered, windowed map: work on several items at once, results in input order.

`ordered_map(fn, items, pool=..., window=N)` keeps at most N calls of `fn` in flight on
`pool` and yields `(item, future)` in the order of `items`: the caller takes results in
order while later items are already being worked on. With `pool=None` each call runs
inline, when its item is reached (no thread, a done future).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

__all__ = ["done", "ordered_map"]

T = TypeVar("T")
R = TypeVar("R")


def done(fn: Callable[[T], R], item: T) -> Future[R]:
    """`fn(item)` run now, as a done future (its exception kept in it)."""
    fut: Future[R] = Future()
    try:
        fut.set_result(fn(item))
    except BaseException as exc:
        fut.set_exception(exc)
    return fut


def ordered_map(
    fn: Callable[[T], R],
    items: Iterable[T],
    *,
    pool: Executor | None,
    window: int,
) -> Iterator[tuple[T, Future[R]]]:
    """Yield `(item, future of fn(item))` in input order, at most `window` in flight.

    Items are taken from `items` only as room frees up, so a slow consumer slows the
    producer instead of growing a queue. When the consumer stops early (closes the
    generator), futures not yet taken are cancelled where they have not started.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    in_flight: deque[tuple[T, Future[R]]] = deque()
    it = iter(items)
    exhausted = False
    try:
        while True:
            if pool is None:
                try:
                    item = next(it)
                except StopIteration:
                    return
                yield item, done(fn, item)
                continue
            # hand out what is finished first: a result never waits for the next item
            while in_flight and in_flight[0][1].done():
                yield in_flight.popleft()
            if not exhausted and len(in_flight) < window:
                try:
                    item = next(it)
                except StopIteration:
                    exhausted = True
                else:
                    in_flight.append((item, pool.submit(fn, item)))
                    continue
            if not in_flight:
                return
            yield in_flight.popleft()
    finally:
        for _, fut in in_flight:
            fut.cancel()
