"""Public test helpers (like ``structlog.testing``): a scriptable fake charger and a fake clock.

The fake charger is a real OCPP-J client over a real socket (python-websockets), so tests
exercise the same handshake, framing and validation a charger in the field meets.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect


class FakeClock:
    """A settable UTC clock for services: ``clock()`` returns the current fake time."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class CallError(Exception):
    def __init__(self, code: str, description: str, details: Any) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details


InboundHandler = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]] | dict[str, Any]]


class FakeCharger:
    """An OCPP-J client: ``await call(action, payload)`` returns the CSMS's payload or raises
    :class:`CallError`; CSMS-initiated CALLs are answered by ``on_call`` (default: Accepted)
    and recorded in ``received``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[str, asyncio.Future[Any]] = {}
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.raw_in: list[Any] = []
        self.on_call: InboundHandler = lambda action, payload: {"status": "Accepted"}
        self.reader = asyncio.create_task(self._read())
        self.inbound = asyncio.Queue[tuple[str, dict[str, Any]]]()

    @property
    def subprotocol(self) -> str | None:
        return self.ws.subprotocol

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = orjson.loads(raw)
            self.raw_in.append(msg)
            kind = msg[0]
            if kind == 2:
                _, mid, action, payload = msg
                self.received.append((action, payload))
                self.inbound.put_nowait((action, payload))
                result = self.on_call(action, payload)
                if not isinstance(result, dict):
                    result = await result
                await self.ws.send(orjson.dumps([3, mid, result]).decode())
            elif kind in (3, 4):
                fut = self.waiting.pop(msg[1], None)
                if fut is not None and not fut.done():
                    if kind == 3:
                        fut.set_result(msg[2])
                    else:
                        fut.set_exception(CallError(msg[2], msg[3], msg[4] if len(msg) > 4 else {}))

    async def send_raw(self, text: str | bytes) -> None:
        await self.ws.send(text)

    async def call(self, action: str, payload: dict[str, Any], timeout: float = 10.0,
                   message_id: str | None = None) -> Any:
        mid = message_id or str(next(self.ids))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.waiting[mid] = fut
        await self.ws.send(orjson.dumps([2, mid, action, payload]).decode())
        return await asyncio.wait_for(fut, timeout)

    async def expect_raw(self, timeout: float = 5.0) -> Any:
        """Wait for the next frame that is not an answer we were waiting for."""
        start = len(self.raw_in)
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.raw_in) <= start:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("no frame")
            await asyncio.sleep(0.01)
        return self.raw_in[start]

    async def close(self) -> None:
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self.reader
        await self.ws.close()


def basic_auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@contextlib.asynccontextmanager
async def fake_charger(
    base_url: str, charger_id: str, *, password: str | None = None, subprotocols: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[FakeCharger]:
    """Connect a fake charger to ``{base_url}/{charger_id}`` (subprotocols default 1.6)."""
    extra = dict(headers or {})
    if password is not None:
        extra["Authorization"] = basic_auth(charger_id, password)
    protos = ["ocpp1.6"] if subprotocols is None else subprotocols
    ws = await connect(
        f"{base_url}/{charger_id}",
        subprotocols=protos or None,  # type: ignore[arg-type]
        additional_headers=extra,
        open_timeout=5,
        max_size=2**22,
    )
    charger = FakeCharger(ws)
    try:
        yield charger
    finally:
        await charger.close()
