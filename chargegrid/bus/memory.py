"""In-process event bus: fan-out of live events to SSE clients and other in-process readers.

Publishing never blocks and never awaits: it is called from the OCPP hot path. Each
subscriber has a bounded queue; a subscriber too slow to keep up loses its oldest events
(and is told so with a ``bus.overflow`` event) rather than slowing chargers down or growing
memory without bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any


class MemoryBus:
    def __init__(self, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[tuple[str, dict[str, Any]]]] = set()
        self._queue_size = queue_size
        self.published = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        self.published += 1
        for q in self._subscribers:
            if q.full():
                q.get_nowait()  # drop the oldest: a slow reader must not hold chargers up
            q.put_nowait((topic, data))

    async def subscribe(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        q: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(self._queue_size)
        self._subscribers.add(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._subscribers.discard(q)
