"""A small bounded connection pool shared by both engines (no extra dependency).

Connections are made on demand up to `max_size`; a caller waits up to `timeout` seconds
for one to come back, then gets StoreUnavailableError. A connection that `healthy()`
rejects after use is closed instead of being reused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from vision_stats.errors import StoreError, StoreUnavailableError

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    def __init__(
        self,
        connect: Callable[[], C],
        close: Callable[[C], None],
        *,
        healthy: Callable[[C], bool] = lambda _c: True,
        max_size: int = 8,
        timeout: float = 30.0,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self._connect = connect
        self._close = close
        self._healthy = healthy
        self._max_size = max_size
        self._timeout = timeout
        self._idle: list[C] = []
        self._size = 0
        self._closed = False
        self._cond = threading.Condition()

    @contextmanager
    def connection(self) -> Iterator[C]:
        conn = self._acquire()
        try:
            yield conn
        finally:
            self._release(conn)

    def _acquire(self) -> C:
        with self._cond:
            while True:
                if self._closed:
                    raise StoreError("the statistics store is closed")
                if self._idle:
                    return self._idle.pop()
                if self._size < self._max_size:
                    self._size += 1
                    break
                if not self._cond.wait(self._timeout):
                    raise StoreUnavailableError(
                        f"no database connection became free within {self._timeout:g} s "
                        f"({self._max_size} in use)"
                    )
        try:
            return self._connect()
        except BaseException:
            with self._cond:
                self._size -= 1
                self._cond.notify()
            raise

    def _release(self, conn: C) -> None:
        keep = not self._closed and self._healthy(conn)
        if not keep:
            self._close(conn)
        with self._cond:
            if keep and not self._closed:
                self._idle.append(conn)
            else:
                self._size -= 1
                if keep:  # closed while it was out
                    self._close(conn)
            self._cond.notify()

    def discard_idle(self) -> int:
        """Close every idle connection (the server may have dropped them); new ones follow."""
        with self._cond:
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            self._close(conn)
        return len(idle)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._size -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            self._close(conn)
