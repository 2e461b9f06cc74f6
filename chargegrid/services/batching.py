"""Group commit: many callers' writes in one database transaction, each acknowledged after it.

OCPP traffic is many small writes (a sample, a status, a boot record). One transaction each
costs milliseconds of CPU on the node; one per batch costs the same for a hundred. A caller
gets a future that resolves when its items are committed (or fails with the write's error), so
a charger is never answered for something a crash could still lose.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, TypeVar

import structlog

T = TypeVar("T")
log = structlog.get_logger("chargegrid.batching")


class GroupCommit(Generic[T]):
    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Any]],
        *,
        name: str,
        interval_s: float = 0.05,
        max_items: int = 500,
    ) -> None:
        self._write = write
        self.name = name
        self.interval_s = interval_s
        self.max_items = max_items
        self._items: list[T] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.items_written = 0
        self.batches = 0

    def add(self, items: Iterable[T]) -> asyncio.Future[None]:
        """Queue items; the future resolves once they are committed. Never awaits."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._items.extend(items)
        self._waiters.append(fut)
        if len(self._items) >= self.max_items:
            self._wakeup.set()
        return fut

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"group-commit-{self.name}")

    async def stop(self) -> None:
        """Stop the timer and commit what is still queued."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.flush()

    async def _loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.interval_s)
            self._wakeup.clear()
            await self.flush()

    async def flush(self) -> None:
        if not self._waiters:
            return
        items, self._items = self._items, []
        waiters, self._waiters = self._waiters, []
        try:
            if items:
                await self._write(items)
        except Exception as exc:  # the senders will retry: fail their calls, keep running
            log.exception("batch.failed", batch=self.name, size=len(items))
            for w in waiters:
                if not w.done():
                    w.set_exception(exc)
            return
        self.items_written += len(items)
        self.batches += 1
        for w in waiters:
            if not w.done():
                w.set_result(None)
