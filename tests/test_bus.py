"""The in-process bus: subscriptions count from creation, and slow readers lose the oldest."""

from __future__ import annotations

from chargegrid.bus.memory import MemoryBus


async def test_subscription_sees_events_published_before_its_first_read() -> None:
    bus = MemoryBus()
    sub = bus.subscribe()
    bus.publish("a", {"n": 1})
    assert await anext(sub) == ("a", {"n": 1})
    await sub.aclose()
    bus.publish("b", {})
    assert sub.queue.empty()  # unsubscribed: nothing more arrives


async def test_slow_reader_loses_oldest_not_newest() -> None:
    bus = MemoryBus(queue_size=3)
    sub = bus.subscribe()
    for n in range(5):
        bus.publish("e", {"n": n})
    got = [(await anext(sub))[1]["n"] for _ in range(3)]
    assert got == [2, 3, 4]
    await sub.aclose()
