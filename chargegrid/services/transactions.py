"""Driver authorization, transactions and meter values.

Rules:
- 1.6: the CSMS assigns transaction ids. A replayed StartTransaction (same charger, connector,
  idTag, timestamp and meterStart) gets the id it got the first time; a replayed
  StopTransaction changes nothing.
- 2.x: a TransactionEvent is recorded by (charger, transactionId, seqNo) first (group-committed);
  a replay is answered like the original and changes nothing.
- Meter values are group-committed: MeterValues calls are acknowledged only once their batch
  is committed (the returned future resolves then), so a charger never gets a CALLRESULT for
  a sample that a crash could lose, and the database sees one multi-row insert per batch
  instead of one per call. Live session figures (energy, power, SoC) are updated in memory at
  once and written to the session row at most every ``session_flush_s``: the samples table
  holds every reading, and the stop message carries the final ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog

from chargegrid.core import sessions as core_sessions
from chargegrid.core.auth import authorize
from chargegrid.core.model import MeterSample, OcppVersion, Session, SessionStatus, TokenStatus
from chargegrid.core.sessions import TxEvent
from chargegrid.services.batching import GroupCommit
from chargegrid.services.ports import EventBus, Store, StoredEvent

log = structlog.get_logger("chargegrid.transactions")


def session_event(s: Session) -> dict[str, Any]:
    return {
        "session_id": s.id,
        "charger_id": s.charger_id,
        "evse_id": s.evse_id,
        "connector_id": s.connector_id,
        "transaction_id": s.transaction_id,
        "id_token": s.id_token,
        "status": s.status.value,
        "energy_wh": s.energy_wh,
        "power_w": s.power_w,
        "soc_percent": s.soc_percent,
        "started_at": s.started_at.isoformat(),
        "stopped_at": s.stopped_at.isoformat() if s.stopped_at else None,
        "stop_reason": s.stop_reason,
    }


class TransactionService:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        clock: Callable[[], datetime],
        *,
        batch_max: int = 500,
        batch_interval_s: float = 0.05,
        session_flush_s: float = 5.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.session_flush_s = session_flush_s
        self._samples = GroupCommit(store.add_meter_samples, name="meter-samples", interval_s=batch_interval_s,
                                    max_items=batch_max)
        self._events = GroupCommit(self._write_events, name="transaction-events", interval_s=batch_interval_s,
                                   max_items=batch_max)
        self._events_in_flight: set[tuple[str, str, int]] = set()
        self._fresh_events: set[tuple[str, str, int]] = set()
        self._tx_locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}  # lock, users
        self._active: dict[tuple[str, str], Session] = {}
        self._dirty: set[tuple[str, str]] = set()
        self._published: dict[tuple[str, str], float] = {}  # last session.updated, monotonic s
        self._trailing: set[tuple[str, str]] = set()  # a publish is scheduled for these
        self.live_event_interval_s = 1.0
        self._session_task: asyncio.Task[None] | None = None

    @property
    def samples_written(self) -> int:
        return self._samples.items_written

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        for s in await self.store.list_sessions(active=True, limit=1_000_000):
            self._active[(s.charger_id, s.transaction_id)] = s
        self._samples.start()
        self._events.start()
        self._session_task = asyncio.create_task(self._session_loop(), name="session-flusher")

    async def stop(self) -> None:
        if self._session_task is not None:
            self._session_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._session_task
        await self._events.stop()
        await self._samples.stop()
        await self._flush_sessions()

    # -- authorization ---------------------------------------------------------------------
    async def authorize(self, token: str) -> tuple[TokenStatus, datetime | None]:
        record = await self.store.get_token(token)
        status = authorize(record, self.clock())
        log.info("token.authorize", token=token, status=status.value)
        return status, (record.expires_at if record else None)

    def active_sessions(self) -> list[Session]:
        return sorted(self._active.values(), key=lambda s: (s.charger_id, s.evse_id, s.connector_id))

    def live(self, charger_id: str, transaction_id: str) -> Session | None:
        return self._active.get((charger_id, transaction_id))

    def _remember(self, s: Session) -> None:
        key = (s.charger_id, s.transaction_id)
        if s.status is SessionStatus.ACTIVE:
            self._active[key] = s
        else:
            self._active.pop(key, None)
            self._dirty.discard(key)
            self._published.pop(key, None)

    # -- 1.6 --------------------------------------------------------------------------------
    async def start_v16(
        self, charger_id: str, *, connector_id: int, id_tag: str, meter_start_wh: int, at: datetime,
        reservation_id: int | None = None,
    ) -> tuple[Session, TokenStatus]:
        """Start (or recognise a replayed start of) a 1.6 transaction.

        The session is recorded even when the token is refused: the charger may already be
        delivering energy (an offline start), and it will stop on the refusal itself.
        """
        status, _ = await self.authorize(id_tag)
        fresh = core_sessions.start_v16(
            charger_id=charger_id,
            connector_id=connector_id,
            id_tag=id_tag,
            meter_start_wh=meter_start_wh,
            at=at,
            reservation_id=reservation_id,
        )
        assert fresh.start_key is not None
        existing = await self.store.session_by_start_key(charger_id, fresh.start_key)
        if existing is not None:
            log.info("transaction.start_replayed", charger_id=charger_id, transaction_id=existing.transaction_id)
            return existing, status
        stored = await self.store.insert_session(fresh)
        if stored.status is SessionStatus.ACTIVE:
            self._remember(stored)
        self.bus.publish("session.started", session_event(stored))
        return stored, status

    async def stop_v16(
        self,
        charger_id: str,
        *,
        transaction_id: str,
        meter_stop_wh: int,
        at: datetime,
        reason: str | None,
        samples: tuple[MeterSample, ...] = (),
    ) -> Session | None:
        """Stop a 1.6 transaction; unknown ids are logged and acknowledged (nothing to lose)."""
        if samples:
            await self.add_samples(samples)
        current = self._active.get((charger_id, transaction_id)) or await self.store.session_by_transaction(
            charger_id, transaction_id
        )
        if current is None:
            log.warning("transaction.stop_unknown", charger_id=charger_id, transaction_id=transaction_id)
            return None
        if current.status is SessionStatus.COMPLETED:
            return current
        done = core_sessions.stop(current, at=at, meter_stop_wh=meter_stop_wh, reason=reason)
        await self.store.update_session(done)
        self._remember(done)
        self.bus.publish("session.stopped", session_event(done))
        return done

    # -- 2.x -----------------------------------------------------------------------------------
    async def transaction_event(self, charger_id: str, version: OcppVersion, ev: TxEvent) -> Session | None:
        """Apply a 2.x TransactionEvent once; returns the session (None for a replay).

        The event's identity is group-committed with others (a 2.x fleet sends one per
        transaction per meter interval, as many as 1.6 MeterValues), and an Updated event only
        changes the session in memory, written with the other live figures every few seconds;
        a session's start and end are written at once.
        """
        key = (charger_id, ev.transaction_id, ev.seq_no)
        if key in self._events_in_flight:  # the same event twice in one batch: the first one counts
            return None
        self._events_in_flight.add(key)
        try:
            await self._events.add((StoredEvent(charger_id=charger_id, transaction_id=ev.transaction_id,
                                                seq_no=ev.seq_no, event_type=ev.event_type,
                                                timestamp=ev.timestamp),))
        finally:
            self._events_in_flight.discard(key)
        fresh = key in self._fresh_events
        self._fresh_events.discard(key)
        if not fresh:
            log.info("transaction.event_replayed", charger_id=charger_id, transaction_id=ev.transaction_id,
                     seq_no=ev.seq_no)
            return None
        try:
            return await self._apply_event(charger_id, version, ev)
        except BaseException:
            # Recorded as seen but not applied: forget it, so that the charger's retry is applied.
            await self.store.forget_transaction_event(charger_id, ev.transaction_id, ev.seq_no)
            raise

    async def _apply_event(self, charger_id: str, version: OcppVersion, ev: TxEvent) -> Session:
        if ev.samples:
            # Only a fresh event's samples: a replay's may be labelled differently (its EVSE is
            # no longer known once the session ended) and would be stored as new.
            await self.meter_values(ev.samples)
        skey = (charger_id, ev.transaction_id)
        lock, users = self._tx_locks.get(skey) or (asyncio.Lock(), 0)
        self._tx_locks[skey] = (lock, users + 1)
        try:
            async with lock:  # two events of one transaction at once must not both read the old state
                current = self._active.get(skey) or await self.store.session_by_transaction(
                    charger_id, ev.transaction_id
                )
                merged = core_sessions.apply_event(current, ev, charger_id=charger_id, version=version)
                if current is None:
                    merged = await self.store.insert_session(merged)
                    topic = "session.started"
                elif merged.status is SessionStatus.COMPLETED or current.status is SessionStatus.COMPLETED:
                    await self.store.update_session(merged)
                    self._dirty.discard(skey)
                    topic = "session.stopped"
                else:
                    self._dirty.add(skey)
                    topic = "session.updated"
                self._remember(merged)
        finally:
            lock, users = self._tx_locks[skey]
            if users == 1:
                del self._tx_locks[skey]
            else:
                self._tx_locks[skey] = (lock, users - 1)
        self.bus.publish(topic, session_event(merged))
        return merged

    async def _write_events(self, events: list[StoredEvent]) -> None:
        self._fresh_events.update(await self.store.record_transaction_events(events))

    # -- meter values ----------------------------------------------------------------------
    def meter_values(self, samples: tuple[MeterSample, ...]) -> asyncio.Future[None]:
        """Queue samples; the future resolves when they are committed. Never awaits."""
        self._apply_live(samples)
        return self._samples.add(samples)

    async def add_samples(self, samples: tuple[MeterSample, ...]) -> None:
        await self.meter_values(samples)

    def _apply_live(self, samples: tuple[MeterSample, ...]) -> None:
        for m in samples:
            if m.transaction_id is None:
                continue
            key = (m.charger_id, m.transaction_id)
            s = self._active.get(key)
            if s is None:
                continue
            updated = core_sessions.apply_sample(s, m)
            if updated is not s:
                self._active[key] = updated
                self._dirty.add(key)
                # Live views need power and energy about once a second, not per sample: a
                # charger replaying an offline hour would otherwise flood every SSE client.
                # The last change of a burst is published when its second is up (trailing edge).
                now = time.monotonic()
                wait = self._published.get(key, 0.0) + self.live_event_interval_s - now
                if wait <= 0:
                    self._published[key] = now
                    self.bus.publish("session.updated", session_event(updated))
                elif key not in self._trailing:
                    self._trailing.add(key)
                    asyncio.get_running_loop().call_later(wait, self._publish_trailing, key)

    def _publish_trailing(self, key: tuple[str, str]) -> None:
        self._trailing.discard(key)
        s = self._active.get(key)
        if s is not None:  # a session that ended meanwhile already published session.stopped
            self._published[key] = time.monotonic()
            self.bus.publish("session.updated", session_event(s))

    async def _session_loop(self) -> None:
        while True:
            await asyncio.sleep(self.session_flush_s)
            try:
                await self._flush_sessions()
            except Exception:
                log.exception("session.flush_failed")

    async def _flush_sessions(self, chunk: int = 500) -> None:
        """Write the live figures of sessions that moved, a chunk per statement (one UPDATE
        per session every few seconds cost ~1 ms of CPU each: a fleet of thousands of active
        sessions would have spent whole seconds on it), yielding between chunks."""
        dirty, self._dirty = self._dirty, set()
        live = [s for key in dirty if (s := self._active.get(key)) is not None and s.id is not None]
        for i in range(0, len(live), chunk):
            await self.store.update_live_figures(live[i : i + chunk])
            await asyncio.sleep(0)

    async def list_sessions(
        self, *, active: bool | None = None, charger_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Session]:
        """Sessions from the store, with live figures for the active ones."""
        rows = await self.store.list_sessions(active=active, charger_id=charger_id, limit=limit, offset=offset)
        return [self._active.get((s.charger_id, s.transaction_id), s) for s in rows]

    async def get_session(self, session_id: int) -> Session | None:
        s = await self.store.session_by_id(session_id)
        if s is None:
            return None
        return self._active.get((s.charger_id, s.transaction_id), s)

    async def samples_of(self, s: Session, limit: int = 1000) -> list[MeterSample]:
        """A session's samples. The window allows for chargers whose clock drifts a little
        from the timestamps in their start and stop messages."""
        margin = timedelta(hours=1)
        until = None if s.stopped_at is None else s.stopped_at + margin
        return await self.store.list_meter_samples(
            s.charger_id, s.transaction_id, since=s.started_at - margin, until=until, limit=limit
        )
