"""Load generator: N simulated OCPP 1.6 chargers sending MeterValues at a fixed total rate.

Built on the picows client and uvloop so that one process on one core drives thousands of
calls per second with room to spare (the figures are about the server, not this process).

Each charger ``BENCH-00001`` ... connects to ``{url}/{id}`` with subprotocol ``ocpp1.6`` and
HTTP Basic auth, sends a BootNotification and waits for its answer. Under load, charger ``i``
of ``N`` sends a MeterValues every ``N/R`` seconds, its first call offset by ``i/R`` seconds,
so the total rate is ``R`` calls/s spread evenly. A charger never has more than one CALL
outstanding (as OCPP requires): when an answer comes after the next call was due, the next
call goes out at once and is counted as ``late``. An unanswered CALL counts as a timeout
after ``--timeout`` seconds and the charger moves on.

Two ways to run it:

- standalone: ``python benchmarks/loadgen.py --url ws://127.0.0.1:9000/ocpp --chargers 200
  --rate 500 --duration 10`` prints one JSON summary;
- ``--control``: the benchmark driver sends commands on stdin, one a line, and reads one
  JSON object a line on stdout:

  ``connect K``  connect and boot K more chargers  -> ``{"event": "connected", ...}``
  ``load R``     start MeterValues at R calls/s in total over all connected chargers
  ``mark``       counters and latencies since the previous mark -> ``{"event": "mark", ...}``
  ``stop``       stop sending, wait for outstanding answers, close -> ``{"event": "stopped", ...}``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import uvloop
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

CALL, CALLRESULT, CALLERROR = 2, 3, 4


def raise_nofile_limit() -> int:
    """Sockets are files: lift the soft limit to the hard one for 10,000 connections."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, round(q / 100.0 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


@dataclass
class Counters:
    """What happened since the last mark (or since the start, for totals)."""

    sent: int = 0
    answered: int = 0
    call_errors: int = 0
    timeouts: int = 0
    late: int = 0
    latencies_s: list[float] = field(default_factory=list)

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        out = {k: v for k, v in asdict(self).items() if k != "latencies_s"}
        p50, p99 = percentile(lat, 50), percentile(lat, 99)
        out.update(
            seconds=round(seconds, 4),
            rate_answered=round(self.answered / seconds, 1) if seconds > 0 else None,
            latency_p50_ms=None if p50 is None else round(p50 * 1e3, 3),
            latency_p99_ms=None if p99 is None else round(p99 * 1e3, 3),
            latency_max_ms=round(lat[-1] * 1e3, 3) if lat else None,
        )
        return out


class Charger(WSListener):
    """One simulated charger: one socket, at most one outstanding CALL."""

    def __init__(self, gen: LoadGen, index: int) -> None:
        self.gen = gen
        self.index = index
        self.charger_id = f"{gen.prefix}{index:05d}"
        self.transport: WSTransport | None = None
        self.next_id = 0
        self.outstanding: str | None = None
        self.outstanding_action = ""
        self.sent_at = 0.0
        self.due_pending = False  # a call fell due while one was outstanding
        self.energy_wh = 1_000_000 + index * 1000
        self.timer: asyncio.TimerHandle | None = None
        self.next_due = 0.0
        self.period = 0.0
        self.boot_answer: asyncio.Future[bool] | None = None
        self.closed = False

    # -- picows callbacks ----------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.closed = True
        if self.outstanding is not None:
            self._settled()
        if self.timer is not None:
            self.timer.cancel()
        if self.boot_answer is not None and not self.boot_answer.done():
            self.boot_answer.set_result(False)
        if not self.gen.stopping:
            self.gen.disconnects += 1

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        mtype = frame.msg_type
        if mtype is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()
            return
        if mtype is not WSMsgType.TEXT:
            return
        now = time.perf_counter()
        try:
            msg = orjson.loads(frame.get_payload_as_memoryview())
            kind, mid = msg[0], msg[1]
        except (orjson.JSONDecodeError, IndexError, KeyError, TypeError):
            self.gen.bad_frames += 1
            return
        if kind == CALL:  # the server asks something (not expected here): refuse politely
            transport.send(WSMsgType.TEXT, orjson.dumps([CALLERROR, mid, "NotImplemented", "loadgen", {}]))
            return
        if mid != self.outstanding:
            self.gen.stray_answers += 1
            return
        action = self.outstanding_action
        self._settled()
        if action == "BootNotification":
            if kind == CALLRESULT and msg[2].get("status", "Accepted") != "Accepted":
                self.gen.boot_rejected += 1  # answered, but not accepted (the baseline answers {})
            if self.boot_answer is not None and not self.boot_answer.done():
                self.boot_answer.set_result(kind == CALLRESULT)
            return
        c = self.gen.window
        if kind == CALLRESULT:
            c.answered += 1
            self.gen.total.answered += 1
            c.latencies_s.append(now - self.sent_at)
        else:
            c.call_errors += 1
            self.gen.total.call_errors += 1
            if self.gen.first_error is None:
                self.gen.first_error = msg[2:4]
        if self.due_pending and not self.gen.stopping:
            self.due_pending = False
            self.send_meter_values()

    # -- calls ---------------------------------------------------------------------------------
    def _settled(self) -> None:
        self.outstanding = None
        gen = self.gen
        gen.outstanding -= 1
        if gen.outstanding == 0 and gen.drained is not None:
            gen.drained.set()

    def _send(self, action: str, payload: dict[str, Any]) -> None:
        assert self.transport is not None
        self.next_id += 1
        mid = str(self.next_id)
        self.outstanding = mid
        self.gen.outstanding += 1
        self.outstanding_action = action
        self.sent_at = time.perf_counter()
        self.transport.send(WSMsgType.TEXT, orjson.dumps([CALL, mid, action, payload]))

    def boot(self) -> asyncio.Future[bool]:
        self.boot_answer = asyncio.get_running_loop().create_future()
        self._send("BootNotification", {"chargePointVendor": "chargegrid-bench", "chargePointModel": "loadgen",
                                        "chargePointSerialNumber": self.charger_id})
        return self.boot_answer

    def send_meter_values(self) -> None:
        self.energy_wh += 1
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        self._send("MeterValues", {
            "connectorId": 1,
            "meterValue": [{
                "timestamp": stamp,
                "sampledValue": [
                    {"value": str(self.energy_wh), "context": "Sample.Periodic",
                     "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "7200", "context": "Sample.Periodic", "measurand": "Power.Active.Import", "unit": "W"},
                    {"value": "31.3", "context": "Sample.Periodic", "measurand": "Current.Import", "unit": "A"},
                    {"value": "230.1", "context": "Sample.Periodic", "measurand": "Voltage", "unit": "V"},
                ],
            }],
        })
        self.gen.window.sent += 1
        self.gen.total.sent += 1

    def start(self, first_due: float, period: float) -> None:
        self.period = period
        self.next_due = first_due
        self.timer = asyncio.get_running_loop().call_at(first_due, self._fire)

    def _fire(self) -> None:
        self.timer = None
        if self.closed or self.gen.stopping:
            return
        if self.outstanding is None:
            self.send_meter_values()
        else:
            self.due_pending = True
            self.gen.window.late += 1
            self.gen.total.late += 1
        loop = asyncio.get_running_loop()
        self.next_due += self.period
        # Behind by more than one period (the server stalled): skip missed slots, do not burst.
        self.next_due = max(self.next_due, loop.time())
        self.timer = loop.call_at(self.next_due, self._fire)

    def expire(self, now: float, timeout_s: float) -> bool:
        """Give up on a CALL unanswered for ``timeout_s``; True if one expired."""
        if self.outstanding is None or now - self.sent_at < timeout_s:
            return False
        action = self.outstanding_action
        self._settled()
        if action == "BootNotification":
            if self.boot_answer is not None and not self.boot_answer.done():
                self.boot_answer.set_result(False)
            return True
        self.gen.window.timeouts += 1
        self.gen.total.timeouts += 1
        if self.due_pending and not self.gen.stopping and not self.closed:
            self.due_pending = False
            self.send_meter_values()
        return True

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.send_close(WSCloseCode.OK)
            self.transport.disconnect()


class LoadGen:
    def __init__(self, url: str, *, prefix: str, password: str, concurrency: int, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.prefix = prefix
        self.password = password
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.chargers: list[Charger] = []
        self.window = Counters()
        self.total = Counters()
        self.window_started = time.perf_counter()
        self.total_started = self.window_started
        self.stopping = False
        self.disconnects = 0
        self.bad_frames = 0
        self.stray_answers = 0
        self.first_error: Any = None
        self.connect_failures = 0
        self.boot_failures = 0
        self.boot_rejected = 0
        self.outstanding = 0  # CALLs sent and not yet answered, over all chargers
        self.drained: asyncio.Event | None = None
        self._expirer: asyncio.Task[None] | None = None

    # -- connecting --------------------------------------------------------------------------
    async def _connect_one(self, index: int) -> Charger | None:
        charger_id = f"{self.prefix}{index:05d}"
        token = base64.b64encode(f"{charger_id}:{self.password}".encode()).decode()
        headers = {"Authorization": f"Basic {token}", "Sec-WebSocket-Protocol": "ocpp1.6"}
        gen = self
        try:
            _, listener = await ws_connect(
                lambda: Charger(gen, index), f"{self.url}/{charger_id}", extra_headers=headers,
                read_buffer_init_size=2048, websocket_handshake_timeout=self.timeout_s,
            )
        except Exception:
            self.connect_failures += 1
            return None
        assert isinstance(listener, Charger)
        try:
            accepted = await asyncio.wait_for(listener.boot(), self.timeout_s)
        except TimeoutError:
            accepted = False
        if not accepted:
            self.boot_failures += 1
        return listener

    async def connect(self, count: int) -> dict[str, Any]:
        """Connect and boot ``count`` more chargers, at most ``concurrency`` handshakes at a time."""
        first = len(self.chargers) + 1
        indexes = iter(range(first, first + count))
        new: list[Charger] = []
        failures_before = self.connect_failures, self.boot_failures, self.boot_rejected
        started = time.perf_counter()

        async def worker() -> None:
            for index in indexes:
                charger = await self._connect_one(index)
                if charger is not None:
                    new.append(charger)

        await asyncio.gather(*(worker() for _ in range(max(1, min(self.concurrency, count)))))
        seconds = time.perf_counter() - started
        new.sort(key=lambda c: c.index)
        self.chargers.extend(new)
        if self._expirer is None:
            self._expirer = asyncio.create_task(self._expire_loop())
        return {
            "event": "connected",
            "requested": count,
            "connected": len(new),
            "total_connected": sum(1 for c in self.chargers if not c.closed),
            "connect_failures": self.connect_failures - failures_before[0],
            "boot_failures": self.boot_failures - failures_before[1],
            "boot_rejected": self.boot_rejected - failures_before[2],
            "seconds": round(seconds, 3),
        }

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.perf_counter()
            for c in self.chargers:
                c.expire(now, self.timeout_s)

    # -- load --------------------------------------------------------------------------------
    def load(self, rate: float) -> dict[str, Any]:
        """Start MeterValues from every connected charger, ``rate`` calls/s in total, evenly spread."""
        live = [c for c in self.chargers if not c.closed]
        if not live or rate <= 0:
            return {"event": "load", "chargers": 0, "rate": rate}
        period = len(live) / rate
        t0 = asyncio.get_running_loop().time() + 0.05
        for i, c in enumerate(live):
            c.start(t0 + i / rate, period)
        self.mark()
        self.total = Counters()
        self.total_started = self.window_started
        return {"event": "load", "chargers": len(live), "rate": rate, "period_s": round(period, 6)}

    def mark(self) -> dict[str, Any]:
        now = time.perf_counter()
        window, self.window = self.window, Counters()
        seconds, self.window_started = now - self.window_started, now
        out = {"event": "mark", **window.summary(seconds), **self._health()}
        return out

    def _health(self) -> dict[str, Any]:
        return {"disconnects": self.disconnects, "bad_frames": self.bad_frames, "stray_answers": self.stray_answers,
                "first_error": self.first_error}

    async def stop(self) -> dict[str, Any]:
        """Stop sending, wait for outstanding answers (up to the timeout), close every socket."""
        self.stopping = True
        for c in self.chargers:
            if c.timer is not None:
                c.timer.cancel()
                c.timer = None
        if self.outstanding > 0:
            self.drained = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), self.timeout_s + 1)
        total = self.total.summary(time.perf_counter() - self.total_started)
        total.pop("latency_p50_ms")  # latencies belong to windows; totals are about counts
        total.pop("latency_p99_ms")
        total.pop("latency_max_ms")
        if self._expirer is not None:
            self._expirer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expirer
        for c in self.chargers:
            c.close()
        waits = [c.transport.wait_disconnected() for c in self.chargers if c.transport is not None]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 5)
        return {"event": "stopped", "total": total, "chargers": len(self.chargers), **self._health()}


def emit(obj: dict[str, Any]) -> None:
    sys.stdout.buffer.write(orjson.dumps(obj) + b"\n")
    sys.stdout.buffer.flush()


async def control(gen: LoadGen) -> None:
    """Serve the driver's commands from stdin until ``stop`` or end of input."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    emit({"event": "ready"})
    while True:
        line = (await reader.readline()).decode().strip()
        cmd, _, arg = line.partition(" ")
        if cmd == "connect":
            emit(await gen.connect(int(arg)))
        elif cmd == "load":
            emit(gen.load(float(arg)))
        elif cmd == "mark":
            emit(gen.mark())
        elif cmd in ("stop", ""):  # "" is end of input: the driver went away
            emit(await gen.stop())
            return
        else:
            emit({"event": "error", "error": f"unknown command {line!r}"})


async def standalone(gen: LoadGen, chargers: int, rate: float, warmup: float, duration: float) -> None:
    emit(await gen.connect(chargers))
    emit(gen.load(rate))
    await asyncio.sleep(warmup)
    gen.mark()
    await asyncio.sleep(duration)
    emit(gen.mark())
    emit(await gen.stop())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:9000/ocpp", help="base URL; /CHARGER_ID is appended")
    parser.add_argument("--prefix", default="BENCH-", help="charger id prefix (ids are PREFIX00001 ...)")
    parser.add_argument("--password", default="bench-charger-password-0001", help="HTTP Basic password")
    parser.add_argument("--concurrency", type=int, default=100, help="handshakes in flight while connecting")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before an unanswered CALL counts lost")
    parser.add_argument("--control", action="store_true", help="take commands on stdin (used by the driver)")
    parser.add_argument("--chargers", type=int, default=200, help="standalone: chargers")
    parser.add_argument("--rate", type=float, default=500.0, help="standalone: total MeterValues per second")
    parser.add_argument("--warmup", type=float, default=2.0, help="standalone: seconds before measuring")
    parser.add_argument("--duration", type=float, default=10.0, help="standalone: seconds measured")
    args = parser.parse_args()
    raise_nofile_limit()
    gen = LoadGen(args.url, prefix=args.prefix, password=args.password, concurrency=args.concurrency,
                  timeout_s=args.timeout)
    if args.control:
        uvloop.run(control(gen))
    else:
        uvloop.run(standalone(gen, args.chargers, args.rate, args.warmup, args.duration))


if __name__ == "__main__":
    main()
