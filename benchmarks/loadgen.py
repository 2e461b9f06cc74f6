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
                 (with ``--connect-report``: ``{"event": "progress", ...}`` lines every 0.5 s while
                 connecting, and the completion time of every charger in the answer)
  ``load R [OFFSET]``  start MeterValues at R calls/s in total over all connected chargers, the
                 first one OFFSET seconds later (several load generators interleave their calls)
  ``mark [full]`` counters and latencies since the previous mark -> ``{"event": "mark", ...}``
                 (``full``: every latency too, in ms, for percentiles over several generators)
  ``probe API_URL API_KEY COUNT INTERVAL``  status-to-SSE probe, see :meth:`LoadGen.probe`
                 -> ``{"event": "probe", ...}``
  ``stop``       stop sending, wait for outstanding answers, close -> ``{"event": "stopped", ...}``

Several load generators can share one server: ``--first-index`` gives each its own charger
ids, and ``--source-ips`` spreads each one's connections over loopback source addresses
(127.0.0.2, 127.0.0.3, ...), as one source address has only ~28,000 ephemeral ports.
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
    answered_at: list[float] = field(default_factory=list)  # time.monotonic() of each answer, as latencies_s

    def summary(self, seconds: float) -> dict[str, Any]:
        lat = sorted(self.latencies_s)
        out = {k: v for k, v in asdict(self).items() if k not in ("latencies_s", "answered_at")}
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
        self.call_answer: asyncio.Future[tuple[bool, float]] | None = None  # other calls: (accepted, when)
        self.booted = False
        self.closed = False
        self.transaction_id: int | None = None  # with --transactions: MeterValues belong to it

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
        if self.call_answer is not None and not self.call_answer.done():
            self.call_answer.set_result((False, time.perf_counter()))
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
        if action != "MeterValues":
            if action == "StartTransaction" and kind == CALLRESULT:
                self.transaction_id = msg[2].get("transactionId")
            if self.call_answer is not None and not self.call_answer.done():
                self.call_answer.set_result((kind == CALLRESULT, now))
            return
        c = self.gen.window
        if kind == CALLRESULT:
            c.answered += 1
            self.gen.total.answered += 1
            c.latencies_s.append(now - self.sent_at)
            c.answered_at.append(time.monotonic())
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

    def call(self, action: str, payload: dict[str, Any]) -> asyncio.Future[tuple[bool, float]]:
        """Any other CALL (the probe's StatusNotification): resolves to (answered with a result, when)."""
        self.call_answer = asyncio.get_running_loop().create_future()
        if self.closed or self.outstanding is not None:
            self.call_answer.set_result((False, time.perf_counter()))
        else:
            self._send(action, payload)
        return self.call_answer

    def send_meter_values(self) -> None:
        self.energy_wh += 1
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        payload: dict[str, Any] = {
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
        }
        if self.transaction_id is not None:
            payload["transactionId"] = self.transaction_id
        self._send("MeterValues", payload)
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
        if action != "MeterValues":
            if self.call_answer is not None and not self.call_answer.done():
                self.call_answer.set_result((False, now))
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
    def __init__(self, url: str, *, prefix: str, password: str, concurrency: int, timeout_s: float,
                 first_index: int = 1, source_ips: list[str] | None = None, connect_report: bool = False,
                 transactions: bool = False, id_tag: str = "BENCHTAG") -> None:
        self.url = url.rstrip("/")
        self.transactions = transactions  # each charger charges in a session; MeterValues carry its id
        self.id_tag = id_tag
        self.prefix = prefix
        self.next_index = first_index  # the next charger to connect is PREFIX{next_index:05d}
        self.source_ips = source_ips or []
        self.connect_report = connect_report
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
        self.first_connect_error: str | None = None
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
        extra: dict[str, Any] = {}
        if self.source_ips:  # forwarded by ws_connect to loop.create_connection
            extra["local_addr"] = (self.source_ips[index % len(self.source_ips)], 0)
        try:
            _, listener = await ws_connect(
                lambda: Charger(gen, index), f"{self.url}/{charger_id}", extra_headers=headers,
                read_buffer_init_size=2048, websocket_handshake_timeout=self.timeout_s, **extra,
            )
        except Exception as exc:
            self.connect_failures += 1
            if self.first_connect_error is None:
                self.first_connect_error = repr(exc)[:300]
            return None
        assert isinstance(listener, Charger)
        try:
            accepted = await asyncio.wait_for(listener.boot(), self.timeout_s)
        except TimeoutError:
            accepted = False
        if not accepted:
            self.boot_failures += 1
        listener.booted = accepted
        if accepted and self.transactions:
            stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            try:
                await asyncio.wait_for(listener.call("StartTransaction", {
                    "connectorId": 1, "idTag": self.id_tag, "meterStart": listener.energy_wh, "timestamp": stamp,
                }), self.timeout_s)
            except TimeoutError:
                pass
        return listener

    async def connect(self, count: int) -> dict[str, Any]:
        """Connect and boot ``count`` more chargers, at most ``concurrency`` handshakes at a time."""
        first = self.next_index
        self.next_index += count
        indexes = iter(range(first, first + count))
        new: list[Charger] = []
        failures_before = self.connect_failures, self.boot_failures, self.boot_rejected
        done_at: list[float] = []  # time.monotonic() (system-wide on Linux) when each charger was booted
        started_mono = time.monotonic()
        started = time.perf_counter()

        async def worker() -> None:
            for index in indexes:
                charger = await self._connect_one(index)
                if charger is not None:
                    new.append(charger)
                    if charger.booted:
                        done_at.append(time.monotonic())

        async def report_progress() -> None:
            while True:
                await asyncio.sleep(0.5)
                failed = (self.connect_failures - failures_before[0]) + (self.boot_failures - failures_before[1])
                emit({"event": "progress", "booted": len(done_at), "requested": count, "failed": failed,
                      "t": time.monotonic()})

        reporter = asyncio.create_task(report_progress()) if self.connect_report else None
        try:
            await asyncio.gather(*(worker() for _ in range(max(1, min(self.concurrency, count)))))
        finally:
            if reporter is not None:
                reporter.cancel()
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
            "first_connect_error": self.first_connect_error,
            "seconds": round(seconds, 3),
        } | ({"started_at": started_mono, "booted_at": [round(t, 4) for t in done_at]} if self.connect_report else {})

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.perf_counter()
            for c in self.chargers:
                c.expire(now, self.timeout_s)

    # -- load --------------------------------------------------------------------------------
    def load(self, rate: float, offset: float = 0.0) -> dict[str, Any]:
        """Start MeterValues from every connected charger, ``rate`` calls/s in total, evenly spread.

        The first call goes out ``offset`` seconds later (load generators sharing a server
        interleave their calls this way).
        """
        live = [c for c in self.chargers if not c.closed]
        if not live or rate <= 0:
            return {"event": "load", "chargers": 0, "rate": rate}
        period = len(live) / rate
        t0 = asyncio.get_running_loop().time() + 0.05 + offset
        for i, c in enumerate(live):
            c.start(t0 + i / rate, period)
        self.mark()
        self.total = Counters()
        self.total_started = self.window_started
        return {"event": "load", "chargers": len(live), "rate": rate, "period_s": round(period, 6)}

    def mark(self, full: bool = False) -> dict[str, Any]:
        now = time.perf_counter()
        window, self.window = self.window, Counters()
        seconds, self.window_started = now - self.window_started, now
        out = {"event": "mark", **window.summary(seconds), **self._health()}
        if full:
            out["latencies_ms"] = [round(x * 1e3, 3) for x in window.latencies_s]
            out["answered_at"] = [round(t, 3) for t in window.answered_at]  # monotonic: same clock in every process
        return out

    async def probe(self, api_url: str, api_key: str, count: int, interval_s: float) -> dict[str, Any]:
        """How soon a status change reaches a live-events client.

        Subscribes to ``GET {api_url}/api/v1/events`` (Server-Sent Events, ``Bearer`` key), then
        ``count`` times, every ``interval_s``, the first connected charger of this generator sends
        a StatusNotification (connector 1, alternately Unavailable and Available) and the probe
        times, from the send, the CALLRESULT and the matching ``connector.status`` event.
        """
        import httpx  # only the probe needs it

        loop = asyncio.get_running_loop()
        charger = next((c for c in self.chargers if not c.closed), None)
        if charger is None:
            return {"event": "probe", "error": "no connected charger to probe with"}
        waiting: dict[str, asyncio.Future[float]] = {}
        subscribed: asyncio.Future[None] = loop.create_future()
        seen = {"events": 0, "status_events": 0}

        async def read_events() -> None:
            headers = {"Authorization": f"Bearer {api_key}", "Accept": "text/event-stream"}
            async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client, \
                    client.stream("GET", f"{api_url.rstrip('/')}/api/v1/events", headers=headers) as resp:
                if resp.status_code != 200:
                    subscribed.set_exception(RuntimeError(f"GET /api/v1/events: HTTP {resp.status_code}"))
                    return
                event = ""
                async for line in resp.aiter_lines():
                    now = time.perf_counter()
                    if not subscribed.done():
                        subscribed.set_result(None)
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        seen["events"] += 1
                        if event != "connector.status":
                            continue
                        seen["status_events"] += 1
                        data = orjson.loads(line[5:])
                        if data.get("charger_id") == charger.charger_id:
                            fut = waiting.pop(str(data.get("status")), None)
                            if fut is not None and not fut.done():
                                fut.set_result(now)
                    elif not line:
                        event = ""

        reader = asyncio.create_task(read_events())
        try:
            await asyncio.wait_for(asyncio.shield(subscribed), 10)
        except Exception as exc:
            reader.cancel()
            return {"event": "probe", "error": f"could not subscribe: {exc!r}"}
        probes: list[dict[str, Any]] = []
        started = time.perf_counter()
        try:
            for i in range(count):
                status = "Unavailable" if i % 2 == 0 else "Available"
                event_at: asyncio.Future[float] = loop.create_future()
                waiting[status] = event_at
                stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                sent_at = time.perf_counter()
                answer = charger.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                             "status": status, "timestamp": stamp})
                both: set[asyncio.Future[Any]] = {event_at, answer}
                done, _ = await asyncio.wait(both, timeout=self.timeout_s)
                if answer not in done:  # the event came first: give the answer the rest of the time
                    done |= (await asyncio.wait({answer}, timeout=self.timeout_s))[0]
                waiting.pop(status, None)
                accepted, answered_at = answer.result() if answer in done else (False, 0.0)
                probes.append({
                    "status": status,
                    "sse_ms": round((event_at.result() - sent_at) * 1e3, 3) if event_at in done else None,
                    "answer_ms": round((answered_at - sent_at) * 1e3, 3) if accepted else None,
                })
                if not event_at.done():
                    event_at.cancel()
                await asyncio.sleep(max(0.0, started + (i + 1) * interval_s - time.perf_counter()))
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        sse = sorted(p["sse_ms"] for p in probes if p["sse_ms"] is not None)
        answers = sorted(p["answer_ms"] for p in probes if p["answer_ms"] is not None)
        return {
            "event": "probe", "charger_id": charger.charger_id, "count": count, "interval_s": interval_s,
            "seen": len(sse), "missed": count - len(sse), "answered": len(answers),
            "sse_p50_ms": percentile(sse, 50), "sse_max_ms": sse[-1] if sse else None,
            "answer_p50_ms": percentile(answers, 50), "answer_max_ms": answers[-1] if answers else None,
            "events_received": seen["events"], "status_events_received": seen["status_events"], "probes": probes,
        }

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
            rate, _, offset = arg.partition(" ")
            emit(gen.load(float(rate), float(offset or 0)))
        elif cmd == "mark":
            emit(gen.mark(full=arg == "full"))
        elif cmd == "probe":
            api_url, api_key, count, interval = arg.split()
            emit(await gen.probe(api_url, api_key, int(count), float(interval)))
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
    parser.add_argument("--first-index", type=int, default=1, help="the first charger is PREFIX{first-index:05d}")
    parser.add_argument("--source-ips", default="",
                        help="comma-separated loopback source addresses to spread connections over "
                             "(e.g. 127.0.0.2,127.0.0.3; default: the kernel's choice)")
    parser.add_argument("--connect-report", action="store_true",
                        help="control: progress lines while connecting, and each charger's boot time")
    parser.add_argument("--transactions", action="store_true",
                        help="each charger starts a transaction after boot; its MeterValues carry the id")
    parser.add_argument("--control", action="store_true", help="take commands on stdin (used by the driver)")
    parser.add_argument("--chargers", type=int, default=200, help="standalone: chargers")
    parser.add_argument("--rate", type=float, default=500.0, help="standalone: total MeterValues per second")
    parser.add_argument("--warmup", type=float, default=2.0, help="standalone: seconds before measuring")
    parser.add_argument("--duration", type=float, default=10.0, help="standalone: seconds measured")
    args = parser.parse_args()
    raise_nofile_limit()
    gen = LoadGen(args.url, prefix=args.prefix, password=args.password, concurrency=args.concurrency,
                  timeout_s=args.timeout, first_index=args.first_index,
                  source_ips=[ip.strip() for ip in args.source_ips.split(",") if ip.strip()],
                  connect_report=args.connect_report, transactions=args.transactions)
    if args.control:
        uvloop.run(control(gen))
    else:
        uvloop.run(standalone(gen, args.chargers, args.rate, args.warmup, args.duration))


if __name__ == "__main__":
    main()
