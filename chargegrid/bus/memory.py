"""In-process event bus: fan-out of live events to SSE clients and other in-process readers.

Publishing never blocks and never awaits: it is called from the OCPP hot path. Each
subscriber has a bounded queue; a subscriber too slow to keep up loses its oldest events
rather than slowing chargers down or growing memory without bound. A subscription is
registered when ``subscribe()`` returns, not at its first read, so nothing published in
between is missed.
"""

from __future__ import annotations

import asyncio
from typing import Any

Event = tuple[str, dict[str, Any]]


class Subscription:
    def __init__(self, bus: MemoryBus, size: int) -> None:
        self._bus = bus
        self.queue: asyncio.Queue[Event] = asyncio.Queue(size)
        bus._subscribers.add(self.queue)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        return await self.queue.get()

    async def aclose(self) -> None:
        self._bus._subscribers.discard(self.queue)


class MemoryBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size
        self.published = 0

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        self.published += 1
        for q in self._subscribers:
            if q.full():
                q.get_nowait()  # drop the oldest: a slow reader must not hold chargers up
            q.put_nowait((topic, data))

    def subscribe(self) -> Subscription:
        return Subscription(self, self._queue_size)
