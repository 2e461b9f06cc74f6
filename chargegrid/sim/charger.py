"""One simulated charging station: connection, OCPP-J client, connectors, drivers and sessions.

Rules, and why:
- One task per charger runs a small discrete-event loop (timers for arrivals, meter ticks,
  departures, heartbeats, drops, firmware steps) plus one reader task per connection. No task per
  connector or session: thousands of chargers must fit in one process.
- One outstanding CALL per direction (OCPP-J): the loop sends the next queued CALL only after the
  previous one was answered or timed out (``call_timeout_s``). CSMS-initiated CALLs are answered by
  the reader at once; their side effects (a session start, a status report) only queue messages.
- Transaction messages (1.6 StartTransaction, StopTransaction, MeterValues; 2.x TransactionEvent)
  are delivered at least once and in order. While offline they are buffered (2.x marks them
  ``offline``); a message in flight when the connection drops is sent again; everything buffered
  is replayed after the next accepted BootNotification. Other messages are dropped while offline:
  the charger reports its current status after every boot anyway.
- 1.6 MeterValues and StopTransaction carry the transactionId the CSMS returned for the
  StartTransaction; payloads get it at send time, so a session started offline is patched when its
  StartTransaction is replayed. If the CSMS never gives an id, those messages are discarded.
- Offline, drivers are authorized locally (like AllowOfflineTxForUnknownId), so offline sessions
  happen and exercise the replay path.
- Answers to CSMS-initiated CALLs live in ``commands.py``; they use this class's state helpers.
- Time: the event loop's clock for timers, an injected ``wallclock`` for message timestamps.
  Simulated durations (arrivals, dwell, battery) are real durations times ``speed``.
"""

from __future__ import annotations

import asyncio
import base64
import math
import random
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.typing import Subprotocol

from chargegrid.sim import commands
from chargegrid.sim import messages as m
from chargegrid.sim.battery import Battery, acceptance_power_w, charge
from chargegrid.sim.config import SimConfig, SimStats
from chargegrid.sim.framing import (
    Call,
    CallError,
    CallResult,
    decode,
    encode_call,
    encode_error,
    encode_result,
)

Payload = dict[str, Any]
OnResult = Callable[[Payload | None], None]
Wallclock = Callable[[], datetime]
Follow = Callable[[], None]
Reply = tuple[Payload, Follow | None]

INF = math.inf
#: Transaction messages are tried this many times when answered by CALLERROR or timing out
#: (1.6's TransactionMessageAttempts); a dropped connection does not count as an attempt.
TX_ATTEMPTS = 3
#: Seconds offline while "rebooting" after a Reset.
REBOOT_S = 1.0
#: A Reset waits at most this long for queued messages to go out before rebooting.
RESET_FLUSH_S = 5.0
#: Simulated seconds between firmware update steps (Downloading, Downloaded, Installing, Installed).
FIRMWARE_STEP_S = 60.0
EV_MAX_POWER_W = (7400, 11000, 22000, 50000, 150000)

# Why a session ended -> (1.6 reason, 2.x triggerReason, 2.x stoppedReason).
STOP_REASONS: dict[str, tuple[str, str, str]] = {
    "departed": ("EVDisconnected", "EVDeparted", "EVDisconnected"),
    "full": ("Local", "EnergyLimitReached", "Local"),
    "remote": ("Remote", "RemoteStop", "Remote"),
    "hard": ("HardReset", "ResetCommand", "ImmediateReset"),
    "soft": ("SoftReset", "ResetCommand", "ImmediateReset"),
    "deauthorized": ("DeAuthorized", "Deauthorized", "DeAuthorized"),
}


class _Lost(Exception):
    """The connection closed before the CALL was answered."""


class _TimedOut(Exception):
    """No answer within call_timeout_s."""


@dataclass(slots=True, kw_only=True)
class Session:
    connector: int
    token: str
    battery: Battery
    target_soc: float
    departs_at: float  # loop time
    last_tick: float  # loop time of the last battery integration
    next_meter_at: float
    meter_start: int
    transaction_id: int | str | None  # 1.6: from the CSMS; 2.x: ours (uuid hex)
    seq_no: int = 0
    power_w: int = 0


@dataclass(slots=True, kw_only=True)
class Connector:
    id: int
    register_wh: int = 0  # lifetime energy register, only ever grows
    operative: bool = True
    authorizing: bool = False
    session: Session | None = None
    next_arrival_at: float = INF
    limit_w: int | None = None  # from SetChargingProfile
    reservation_id: int | None = None
    reservation_token: str | None = None
    reservation_expires_at: float = INF

    @property
    def free(self) -> bool:
        return self.operative and self.session is None and not self.authorizing


@dataclass(slots=True, kw_only=True)
class Outgoing:
    action: str
    payload: Payload
    transactional: bool = False
    session: Session | None = None  # 1.6: whose transactionId to fill in at send time
    buffered: bool = False  # held back by a disconnect: counts as replayed once delivered
    attempts: int = 0
    on_result: OnResult | None = None  # None means "no answer" (lost, timed out, failed)


@dataclass(slots=True, kw_only=True)
class _Later:
    due: float
    run: Follow


class SimCharger:
    """A charging station with ``config.connectors`` connectors (2.x: EVSEs with one connector each)."""

    def __init__(
        self,
        config: SimConfig,
        index: int,
        *,
        stats: SimStats,
        rng: random.Random,
        gate: asyncio.Semaphore,
        wallclock: Wallclock,
    ) -> None:
        self.config = config
        self.charger_id = config.charger_id(index)
        self.version = config.version_for(index)
        self.v16 = self.version == "ocpp1.6"
        self.stats = stats
        self.connectors = [Connector(id=n) for n in range(1, config.connectors + 1)]
        self.operative = True
        self._rng = rng
        self._gate = gate
        self._wallclock = wallclock
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._booted = False
        self._ever_connected = False
        self._failures = 0
        self._outbox: deque[Outgoing] = deque()
        self._pending: tuple[str, asyncio.Future[Payload | None]] | None = None
        self._msg_seq = 0
        self._wake: asyncio.Event | None = None
        self._later: list[_Later] = []
        self._next_connect_at = 0.0
        self._next_boot_at = INF
        self._next_heartbeat_at = INF
        self._next_drop_at = INF
        self._heartbeat_s = config.heartbeat_cap_s  # effective (capped) interval, real seconds
        self._heartbeat_interval = int(config.heartbeat_cap_s)  # what the CSMS set, as reported back
        self._meter_interval_s = config.meter_interval_s
        self._reset: str | None = None  # "hard" | "soft" while a reset is pending
        self._reset_deadline = INF
        self._reset_on_idle = False
        self._boot_reason = "PowerUp"
        self._settings: dict[str, str] = {}

    # ---------------------------------------------------------------- main loop

    async def run(self) -> None:
        """Run until cancelled; closes its connection cleanly on the way out."""
        self._wake = asyncio.Event()
        now = self._now()
        for conn in self.connectors:
            conn.next_arrival_at = now + self._arrival_delay()
        try:
            while True:
                now = self._now()
                self._fire_timers(now)
                if self._ws is None:
                    if now >= self._next_connect_at:
                        await self._connect()
                        continue
                elif not self._booted:
                    if now >= self._next_boot_at:
                        await self._boot_once()
                        continue
                else:
                    if self._reset is not None and (not self._outbox or now >= self._reset_deadline):
                        self._reset = None
                        self._reset_deadline = INF
                        await self._drop(REBOOT_S, reason="RemoteReset")
                        continue
                    if now >= self._next_drop_at:
                        self._next_drop_at = INF  # rescheduled by the next accepted boot
                        await self._drop(self._rng.uniform(*self.config.offline_s), reason="PowerUp")
                        continue
                    if self._outbox:
                        await self._send_out(self._outbox.popleft())
                        continue
                await self._sleep_until(self._next_deadline())
        finally:
            await self._shutdown()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _ts(self) -> str:
        return m.iso(self._wallclock())

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _sleep_until(self, deadline: float) -> None:
        assert self._wake is not None
        delay = deadline - self._now()
        if delay <= 0:
            await asyncio.sleep(0)
            return
        self._wake.clear()
        if delay == INF:
            await self._wake.wait()
            return
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            pass

    def _next_deadline(self) -> float:
        times = [later.due for later in self._later]
        if self._ws is None:
            times.append(self._next_connect_at)
        elif not self._booted:
            times.append(self._next_boot_at)
        else:
            times += [self._next_heartbeat_at, self._next_drop_at, self._reset_deadline]
        for conn in self.connectors:
            times += [conn.next_arrival_at, conn.reservation_expires_at]
            if conn.session is not None:
                times += [conn.session.next_meter_at, conn.session.departs_at]
        return min(times, default=INF)

    def _fire_timers(self, now: float) -> None:
        if self._later:
            due = [later for later in self._later if later.due <= now]
            self._later = [later for later in self._later if later.due > now]
            for later in due:
                later.run()
        if self._booted and now >= self._next_heartbeat_at:
            self._next_heartbeat_at = now + self._heartbeat_s
            self._enqueue(Outgoing(action="Heartbeat", payload={}))
        for conn in self.connectors:
            if now >= conn.reservation_expires_at:
                self._clear_reservation(conn)
                self._send_status(conn)
            session = conn.session
            if session is not None:
                if now >= session.next_meter_at:
                    session.next_meter_at = now + self._meter_interval_s
                    self._meter(conn, session, now, trigger="MeterValuePeriodic")
                if session.battery.soc >= session.target_soc:
                    self._end(conn, "full")
                elif now >= session.departs_at:
                    self._end(conn, "departed")
            if now >= conn.next_arrival_at:
                conn.next_arrival_at = now + self._arrival_delay()
                self._arrive(conn)

    def _arrival_delay(self) -> float:
        rate = self.config.arrival_rate_per_hour
        if rate <= 0:
            return INF
        return self._rng.expovariate(rate / 3600.0) / self.config.speed

    def _drop_delay(self) -> float:
        rate = self.config.drop_probability_per_hour
        if rate <= 0:
            return INF
        return self._rng.expovariate(rate / 3600.0) / self.config.speed

    def _backoff(self) -> float:
        low, high = self.config.reconnect_backoff_s
        return self._rng.uniform(0.5, 1.0) * min(high, low * float(2 ** min(self._failures, 16)))

    # ---------------------------------------------------------------- connection

    def _headers(self) -> dict[str, str]:
        if self.config.password is None:
            return {}
        raw = f"{self.charger_id}:{self.config.password}".encode()
        return {"Authorization": "Basic " + base64.b64encode(raw).decode()}

    async def _connect(self) -> None:
        self._next_connect_at = INF
        await self._reap_reader()
        url = f"{self.config.url.rstrip('/')}/{self.charger_id}"
        try:
            async with self._gate:
                ws = await connect(
                    url,
                    subprotocols=[Subprotocol(self.version)],
                    additional_headers=self._headers(),
                    compression=None,  # permessage-deflate costs ~100 KiB per connection
                    ping_interval=None,  # OCPP Heartbeat does the job; the CSMS may still ping us
                    proxy=None,
                    open_timeout=10,
                    close_timeout=2,
                    max_size=1 << 20,
                    user_agent_header="chargegrid-sim",
                )
        except InvalidStatus as exc:
            if exc.response.status_code in (401, 403, 404):
                self.stats.rejected_auth += 1
            else:
                self.stats.connect_failures += 1
            self._retry_connect_later()
            return
        except (OSError, TimeoutError, WebSocketException):
            self.stats.connect_failures += 1
            self._retry_connect_later()
            return
        if self._ever_connected:
            self.stats.reconnects += 1
        self._ever_connected = True
        self._ws = ws
        self._booted = False
        self._next_boot_at = self._now()
        self.stats.connected += 1
        self._reader = asyncio.create_task(self._read(ws), name=f"{self.charger_id}-reader")

    def _retry_connect_later(self) -> None:
        self._failures += 1
        self._next_connect_at = self._now() + self._backoff()

    def _disconnect(self, ws: ClientConnection, reconnect_at: float) -> None:
        """Forget ``ws`` (idempotent): fail the CALL in flight, keep only transaction messages."""
        if self._ws is not ws:
            return
        self._ws = None
        self._booted = False
        self._next_connect_at = reconnect_at
        self.stats.connected -= 1
        if self._pending is not None and not self._pending[1].done():
            self._pending[1].set_exception(_Lost())
        kept: deque[Outgoing] = deque()
        dropped: list[Outgoing] = []
        for msg in self._outbox:
            if msg.transactional:
                msg.buffered = True
                kept.append(msg)
            else:
                dropped.append(msg)
        self._outbox = kept
        for msg in dropped:
            if msg.on_result is not None:
                msg.on_result(None)
        self._poke()

    async def _drop(self, offline_for: float, *, reason: str) -> None:
        ws = self._ws
        assert ws is not None
        self.stats.drops += 1
        self._boot_reason = reason
        self._disconnect(ws, self._now() + offline_for)
        await ws.close()
        await self._reap_reader()

    async def _reap_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            await asyncio.wait([reader])

    async def _shutdown(self) -> None:
        ws = self._ws
        if ws is not None:
            self._disconnect(ws, INF)
            await ws.close()
        if self._reader is not None:
            self._reader.cancel()
        await self._reap_reader()

    # ---------------------------------------------------------------- RPC

    async def _call(self, action: str, payload: Payload) -> Payload | None:
        """Send one CALL and wait for its answer; None means CALLERROR. Raises _Lost or _TimedOut."""
        ws = self._ws
        if ws is None:
            raise _Lost
        self._msg_seq += 1
        message_id = str(self._msg_seq)
        future: asyncio.Future[Payload | None] = asyncio.get_running_loop().create_future()
        self._pending = (message_id, future)
        try:
            try:
                await ws.send(encode_call(message_id, action, payload))
            except ConnectionClosed:
                raise _Lost from None
            self.stats.calls_sent += 1
            try:
                async with asyncio.timeout(self.config.call_timeout_s):
                    return await future
            except TimeoutError:
                self.stats.call_timeouts += 1
                raise _TimedOut from None
        finally:
            self._pending = None

    def _enqueue(self, msg: Outgoing) -> None:
        if self._ws is None and not msg.transactional:
            if msg.on_result is not None:
                msg.on_result(None)
            return
        if not self._booted:
            msg.buffered = True
        self._outbox.append(msg)
        self._poke()

    async def _send_out(self, msg: Outgoing) -> None:
        if self.v16 and msg.session is not None and msg.action != "StartTransaction":
            if msg.session.transaction_id is None:
                self.stats.discarded += 1
                return
            msg.payload["transactionId"] = msg.session.transaction_id
        try:
            answer = await self._call(msg.action, msg.payload)
        except _Lost:
            if msg.transactional:
                msg.buffered = True
                self._outbox.appendleft(msg)
            elif msg.on_result is not None:
                msg.on_result(None)
            return
        except _TimedOut:
            answer = None
        if answer is None:
            msg.attempts += 1
            if msg.transactional and msg.attempts < TX_ATTEMPTS:
                self._outbox.appendleft(msg)
                return
        elif msg.buffered:
            self.stats.replayed += 1
        if msg.on_result is not None:
            msg.on_result(answer)

    async def _boot_once(self) -> None:
        self._next_boot_at = INF
        try:
            answer = await self._call("BootNotification", m.boot(self.v16, self.charger_id, self._boot_reason))
        except _Lost:
            return
        except _TimedOut:
            answer = None
        now = self._now()
        cap = self.config.heartbeat_cap_s
        interval = _number((answer or {}).get("interval"))
        if answer is not None and answer.get("status") == "Accepted":
            self._booted = True
            self._failures = 0
            self._boot_reason = "PowerUp"
            self.stats.booted += 1
            self._heartbeat_s = min(interval, cap) if interval > 0 else cap
            self._heartbeat_interval = int(interval) if interval > 0 else int(cap)
            self._next_heartbeat_at = now + self._heartbeat_s
            self._next_drop_at = now + self._drop_delay()
            if self.v16:
                self._enqueue(
                    Outgoing(
                        action="StatusNotification",
                        payload=m.status(True, 0, self._charger_status(), self._ts()),
                    )
                )
            for conn in self.connectors:
                self._send_status(conn)
        else:
            self._next_boot_at = now + (min(interval, cap) if interval > 0 else 10.0)

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for text in ws:
                frame = decode(text)
                if isinstance(frame, Call):
                    await self._answer(ws, frame)
                elif isinstance(frame, CallResult | CallError):
                    if isinstance(frame, CallError):
                        self.stats.call_errors += 1
                    pending = self._pending
                    if pending is not None and pending[0] == frame.message_id and not pending[1].done():
                        pending[1].set_result(frame.payload if isinstance(frame, CallResult) else None)
                elif frame.message_id is not None:
                    await ws.send(encode_error(frame.message_id, "FormationViolation", frame.reason))
        except ConnectionClosed:
            pass
        finally:
            self._disconnect(ws, self._now() + self._backoff())

    async def _answer(self, ws: ClientConnection, call: Call) -> None:
        self.stats.calls_received += 1
        follow: Callable[[], None] | None = None
        try:
            handler = (commands.HANDLERS_16 if self.v16 else commands.HANDLERS_2X).get(call.action)
            if handler is None:
                text = encode_error(call.message_id, "NotImplemented", f"{call.action} is not supported")
            else:
                reply, follow = handler(self, call.payload)
                text = encode_result(call.message_id, reply)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            text = encode_error(call.message_id, "FormationViolation", f"bad payload: {exc!r}")
            follow = None
        await ws.send(text)
        if follow is not None:
            follow()
            self._poke()

    # ---------------------------------------------------------------- drivers and sessions

    def _arrive(self, conn: Connector) -> None:
        if not conn.free:
            return  # the driver finds the connector taken and goes elsewhere
        token = conn.reservation_token or self._rng.choice(self.config.id_tokens)
        reservation_id = conn.reservation_id
        if self._ws is None or not self._booted:
            self._begin(conn, token, trigger="Authorized", reservation_id=reservation_id)
            return
        conn.authorizing = True

        def authorized(answer: Payload | None) -> None:
            conn.authorizing = False
            status = m.token_status(self.v16, answer)
            if answer is None or status == "Accepted":  # no answer: authorize locally
                if conn.free:
                    self._begin(conn, token, trigger="Authorized", reservation_id=reservation_id)
            else:
                self.stats.authorize_rejected += 1

        self._enqueue(Outgoing(action="Authorize", payload=m.authorize(self.v16, token), on_result=authorized))

    def _new_battery(self) -> tuple[Battery, float, float]:
        rng = self._rng
        battery = Battery(
            capacity_wh=rng.randint(40, 100) * 1000,
            soc=rng.uniform(0.10, 0.60),
            max_power_w=rng.choice(EV_MAX_POWER_W),
        )
        return battery, rng.uniform(0.80, 1.0), rng.uniform(1.0, 4.0) * 3600.0

    def _begin(
        self,
        conn: Connector,
        token: str,
        *,
        trigger: str,
        remote_start_id: int | None = None,
        reservation_id: int | None = None,
    ) -> None:
        now = self._now()
        battery, target, dwell = self._new_battery()
        tx_id: str | None = None if self.v16 else uuid.UUID(int=self._rng.getrandbits(128), version=4).hex
        session = Session(
            connector=conn.id,
            token=token,
            battery=battery,
            target_soc=target,
            departs_at=now + dwell / self.config.speed,
            last_tick=now,
            next_meter_at=now + self._meter_interval_s,
            meter_start=conn.register_wh,
            transaction_id=tx_id,
        )
        conn.session = session
        conn.authorizing = False
        self._clear_reservation(conn)
        self.stats.sessions_started += 1
        self.stats.active_sessions += 1
        session.power_w = self._power(conn, session)
        ts = self._ts()

        def started(answer: Payload | None) -> None:
            if answer is None:
                return
            if self.v16:
                tx = answer.get("transactionId")
                if isinstance(tx, int):
                    session.transaction_id = tx
            status = m.token_status(self.v16, answer)
            if status not in (None, "Accepted") and conn.session is session:
                self._end(conn, "deauthorized")

        if self.v16:
            self._enqueue(Outgoing(action="StatusNotification", payload=m.status(True, conn.id, "Preparing", ts)))
            self._enqueue(
                Outgoing(
                    action="StartTransaction",
                    transactional=True,
                    session=session,
                    on_result=started,
                    payload=m.start_transaction(conn.id, token, conn.register_wh, ts, reservation_id),
                )
            )
        else:
            meter = m.sampled_values(False, register_wh=conn.register_wh, power_w=0, soc=battery.soc, periodic=False)
            self._enqueue(
                Outgoing(
                    action="TransactionEvent",
                    transactional=True,
                    session=session,
                    on_result=started,
                    payload=m.transaction_event(
                        event_type="Started",
                        ts=ts,
                        trigger=trigger,
                        seq_no=self._seq(session),
                        transaction_id=str(tx_id),
                        evse=conn.id,
                        offline=self._ws is None,
                        charging_state="Charging",
                        remote_start_id=remote_start_id,
                        token=token,
                        meter=meter,
                        reservation_id=reservation_id,
                    ),
                )
            )
        self._send_status(conn)

    def _seq(self, session: Session) -> int:
        """2.x seqNo: per transaction, from 0 (the spec allows per-transaction or per-station)."""
        seq = session.seq_no
        session.seq_no += 1
        return seq

    def _power(self, conn: Connector, session: Session) -> int:
        if session.battery.soc >= session.target_soc:
            return 0
        return min(self._offered(conn), acceptance_power_w(session.battery, session.battery.soc))

    def _offered(self, conn: Connector) -> int:
        offered = self.config.max_power_w
        if conn.limit_w is not None:
            offered = min(offered, conn.limit_w)
        return max(0, offered)

    def _advance(self, conn: Connector, session: Session, now: float) -> None:
        """Integrate the battery from the last tick to ``now`` (simulated seconds = real x speed)."""
        seconds = (now - session.last_tick) * self.config.speed
        session.last_tick = now
        battery, delivered = charge(session.battery, self._power(conn, session), seconds)
        session.battery = battery
        conn.register_wh += delivered
        self.stats.energy_wh += delivered
        session.power_w = self._power(conn, session)

    def _meter(self, conn: Connector, session: Session, now: float, *, trigger: str) -> None:
        self._advance(conn, session, now)
        ts = self._ts()
        values = m.sampled_values(
            self.v16,
            register_wh=conn.register_wh,
            power_w=session.power_w,
            soc=session.battery.soc,
            periodic=trigger == "MeterValuePeriodic",
        )
        self.stats.meter_values += 1
        if self.v16:
            self._enqueue(
                Outgoing(
                    action="MeterValues",
                    transactional=True,
                    session=session,
                    payload=m.meter_values_16(conn.id, ts, values),
                )
            )
        else:
            state = "Charging" if session.power_w > 0 else "SuspendedEV"
            self._enqueue(
                Outgoing(
                    action="TransactionEvent",
                    transactional=True,
                    session=session,
                    payload=m.transaction_event(
                        event_type="Updated",
                        ts=ts,
                        trigger=trigger,
                        seq_no=self._seq(session),
                        transaction_id=str(session.transaction_id),
                        evse=conn.id,
                        offline=self._ws is None,
                        charging_state=state,
                        meter=values,
                    ),
                )
            )

    def _end(self, conn: Connector, why: str) -> None:
        session = conn.session
        if session is None:
            return
        self._advance(conn, session, self._now())
        conn.session = None
        conn.next_arrival_at = self._now() + self._arrival_delay()
        self.stats.active_sessions -= 1
        self.stats.sessions_completed += 1
        reason16, trigger, stopped = STOP_REASONS[why]
        ts = self._ts()
        if self.v16:
            self._enqueue(
                Outgoing(
                    action="StopTransaction",
                    transactional=True,
                    session=session,
                    payload=m.stop_transaction(conn.register_wh, ts, reason16, session.token),
                )
            )
            self._enqueue(Outgoing(action="StatusNotification", payload=m.status(True, conn.id, "Finishing", ts)))
        else:
            values = m.sampled_values(
                False, register_wh=conn.register_wh, power_w=0, soc=session.battery.soc, periodic=False
            )
            for value in values:
                value["context"] = "Transaction.End"
            self._enqueue(
                Outgoing(
                    action="TransactionEvent",
                    transactional=True,
                    session=session,
                    payload=m.transaction_event(
                        event_type="Ended",
                        ts=ts,
                        trigger=trigger,
                        seq_no=self._seq(session),
                        transaction_id=str(session.transaction_id),
                        evse=conn.id,
                        offline=self._ws is None,
                        charging_state="Idle",
                        stopped_reason=stopped,
                        meter=values,
                    ),
                )
            )
        self._send_status(conn)
        if self._reset_on_idle and all(c.session is None for c in self.connectors):
            self._reset_on_idle = False
            self._schedule_reset("soft")

    # ---------------------------------------------------------------- status

    def _charger_status(self) -> str:
        return "Available" if self.operative else "Unavailable"

    def _connector_status(self, conn: Connector) -> str:
        if not (conn.operative and self.operative) and conn.session is None:
            return "Unavailable"
        if self.v16:
            if conn.session is not None:
                return "Charging" if conn.session.power_w > 0 else "SuspendedEV"
            if conn.authorizing:
                return "Preparing"
            return "Reserved" if conn.reservation_id is not None else "Available"
        if conn.session is not None or conn.authorizing:
            return "Occupied"
        return "Reserved" if conn.reservation_id is not None else "Available"

    def _send_status(self, conn: Connector) -> None:
        self._enqueue(
            Outgoing(
                action="StatusNotification",
                payload=m.status(self.v16, conn.id, self._connector_status(conn), self._ts()),
            )
        )

    def _clear_reservation(self, conn: Connector) -> None:
        conn.reservation_id = None
        conn.reservation_token = None
        conn.reservation_expires_at = INF

    # ---------------------------------------------------------------- CSMS-initiated calls

    def _connector(self, number: Any) -> Connector | None:
        if isinstance(number, int) and 1 <= number <= len(self.connectors):
            return self.connectors[number - 1]
        return None

    def _targets(self, number: Any) -> list[Connector] | None:
        """Connector ``number``, all of them for 0 or None, None if unknown."""
        if number in (0, None):
            return list(self.connectors)
        conn = self._connector(number)
        return None if conn is None else [conn]

    def _schedule_reset(self, kind: str) -> None:
        for conn in self.connectors:
            self._end(conn, kind)
        self._reset = kind
        self._reset_deadline = self._now() + RESET_FLUSH_S

    def _set_limit(self, number: Any, schedule: Payload) -> bool:
        targets = self._targets(number)
        if targets is None:
            return False
        period = schedule["chargingSchedulePeriod"][0]
        limit = float(period["limit"])
        if schedule.get("chargingRateUnit") == "A":
            limit *= m.VOLTS * int(period.get("numberPhases", m.PHASES))
        for conn in targets:
            conn.limit_w = int(limit)
            if conn.session is not None:
                self._advance(conn, conn.session, self._now())
        return True

    def _reserve(self, number: Any, reservation_id: int, token: str, expiry: str) -> tuple[str, Follow | None]:
        if number in (0, None):
            conn = next((c for c in self.connectors if c.free and c.reservation_id is None), None)
            if conn is None:
                return "Occupied", None
        else:
            found = self._connector(number)
            if found is None:
                return "Rejected", None
            conn = found
        if not conn.operative:
            return "Unavailable", None
        if not conn.free or (conn.reservation_id not in (None, reservation_id)):
            return "Occupied", None
        left = (datetime.fromisoformat(expiry.replace("Z", "+00:00")) - self._wallclock()).total_seconds()
        conn.reservation_id = reservation_id
        conn.reservation_token = token
        # Real seconds: the CSMS keeps wall-clock time, whatever the simulation speed.
        conn.reservation_expires_at = self._now() + max(0.0, left)
        chosen = conn
        return "Accepted", lambda: self._send_status(chosen)

    def _cancel_reservation(self, reservation_id: Any) -> bool:
        for conn in self.connectors:
            if conn.reservation_id is not None and conn.reservation_id == reservation_id:
                self._clear_reservation(conn)
                self._send_status(conn)
                return True
        return False

    def _remote_start(
        self, number: Any, token: str, profile: Payload | None, remote_start_id: int | None
    ) -> tuple[bool, Callable[[], None] | None]:
        if number in (0, None):
            conn = next((c for c in self.connectors if c.free and c.reservation_id is None), None)
        else:
            conn = self._connector(number)
        if conn is None or not conn.free or (conn.reservation_token not in (None, token)):
            return False, None
        conn.authorizing = True  # hold the connector until the answer is out
        chosen = conn

        def start() -> None:
            chosen.authorizing = False
            if profile is not None:
                schedule = profile["chargingSchedule"]
                if isinstance(schedule, list):
                    schedule = schedule[0]
                self._set_limit(chosen.id, schedule)
            self._begin(
                chosen,
                token,
                trigger="RemoteStart",
                remote_start_id=remote_start_id,
                reservation_id=chosen.reservation_id,
            )

        return True, start

    def _find_session(self, transaction_id: Any) -> Connector | None:
        for conn in self.connectors:
            if conn.session is not None and conn.session.transaction_id == transaction_id:
                return conn
        return None

    def _change_availability(self, number: Any, operative: bool) -> tuple[str, Callable[[], None] | None]:
        targets = self._targets(number)
        if targets is None:
            return "Rejected", None
        busy = any(c.session is not None for c in targets) and not operative
        if number in (0, None):
            self.operative = operative

        def apply() -> None:
            for conn in targets:
                conn.operative = operative
            if self.v16 and number in (0, None):
                self._enqueue(
                    Outgoing(
                        action="StatusNotification",
                        payload=m.status(True, 0, self._charger_status(), self._ts()),
                    )
                )
            for conn in targets:
                if conn.session is None:
                    self._send_status(conn)

        return ("Scheduled" if busy else "Accepted"), apply

    def _firmware_steps(self, request_id: int | None) -> None:
        now = self._now()
        for n, status in enumerate(("Downloading", "Downloaded", "Installing", "Installed"), start=1):
            step = n * FIRMWARE_STEP_S / self.config.speed
            self._later.append(_Later(due=now + step, run=self._firmware_step(status, request_id)))

    def _firmware_step(self, status: str, request_id: int | None) -> Follow:
        payload = m.firmware_status(self.v16, status, request_id)
        return lambda: self._enqueue(Outgoing(action="FirmwareStatusNotification", payload=payload))

    def _trigger(self, what: str, number: Any) -> str:
        targets = self._targets(number) or []
        if what == "BootNotification":
            if self._ws is not None:
                self._boot_reason = "Triggered"
                self._booted = False
                self._next_boot_at = self._now()
        elif what == "Heartbeat":
            self._enqueue(Outgoing(action="Heartbeat", payload={}))
        elif what == "StatusNotification":
            if self.v16 and number in (0, None):
                self._enqueue(
                    Outgoing(
                        action="StatusNotification",
                        payload=m.status(True, 0, self._charger_status(), self._ts()),
                    )
                )
            for conn in targets:
                self._send_status(conn)
        elif what in ("MeterValues", "TransactionEvent"):
            now = self._now()
            for conn in targets:
                if conn.session is not None:
                    self._meter(conn, conn.session, now, trigger="Trigger")
                elif what == "MeterValues":
                    values = m.sampled_values(
                        self.v16, register_wh=conn.register_wh, power_w=0, soc=None, periodic=False
                    )
                    for value in values:
                        value["context"] = "Trigger"
                    payload = (
                        m.meter_values_16(conn.id, self._ts(), values)
                        if self.v16
                        else {
                            "evseId": conn.id,
                            "meterValue": [{"timestamp": self._ts(), "sampledValue": values}],
                        }
                    )
                    self._enqueue(Outgoing(action="MeterValues", payload=payload))
        elif what in ("FirmwareStatusNotification", "DiagnosticsStatusNotification", "LogStatusNotification"):
            self._enqueue(Outgoing(action=what, payload={"status": "Idle"}))
        else:
            return "NotImplemented"
        return "Accepted"


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
