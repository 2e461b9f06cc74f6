"""Chargers: registration, who may connect, boot, heartbeat, connector status, notifications.

Rules:
- The handshake check is synchronous and in memory (the WebSocket listener cannot await):
  credentials are loaded at start and kept current by this service on every change. A
  password that verified once is remembered by its SHA-256, so reconnect storms do not pay
  PBKDF2 again.
- Status reports are applied newest-wins (core.connectors.supersedes) in memory and in the
  store, so a replayed old StatusNotification cannot rewind what the dashboard shows.
- Every change a person would want to see live is published on the bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

import structlog

from chargegrid.core.connectors import make_status, supersedes
from chargegrid.core.credentials import hash_password, verify_password
from chargegrid.core.model import BootInfo, Charger, ConnectorStatus, OcppVersion
from chargegrid.services.batching import GroupCommit
from chargegrid.services.ports import BootRecord, EventBus, Store

log = structlog.get_logger("chargegrid.chargers")


class Admission(Enum):
    ACCEPT = "accept"
    UNKNOWN = "unknown"
    BAD_PASSWORD = "bad_password"
    AUTO_REGISTER = "auto_register"


@dataclass(frozen=True, slots=True)
class BootDecision:
    status: str  # Accepted | Pending | Rejected
    interval_s: int


def status_event(status: ConnectorStatus) -> dict[str, object]:
    return {
        "charger_id": status.charger_id,
        "evse_id": status.evse_id,
        "connector_id": status.connector_id,
        "status": status.status,
        "state": status.state.value,
        "error_code": status.error_code,
        "at": status.updated_at.isoformat(),
    }


class ChargerService:
    def __init__(
        self,
        store: Store,
        bus: EventBus,
        clock: Callable[[], datetime],
        *,
        auto_register: bool = False,
        heartbeat_interval_s: int = 300,
        seen_persist_s: float = 300.0,
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.auto_register = auto_register
        self.heartbeat_interval_s = heartbeat_interval_s
        self._credentials: dict[str, str | None] = {}
        self._verified: dict[str, bytes] = {}
        # charger id -> (evse, connector) -> latest status: a charger's statuses without a scan
        self._statuses: dict[str, dict[tuple[int, int], ConnectorStatus]] = {}
        self._seen: dict[str, datetime] = {}  # live, every message
        self._tick_now: datetime | None = None
        self._persisted: dict[str, datetime] = {}  # what the store has
        self.seen_persist_s = seen_persist_s
        self._lookups: dict[str, float] = {}
        self._registered_meanwhile: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        # Boots and statuses arrive in storms (a site's power returns, a node restarts):
        # group-committed, each acknowledged after its batch is stored.
        self._boots = GroupCommit(store.record_boots, name="boots")
        self._status_writes = GroupCommit(store.save_connector_statuses, name="statuses")

    async def start(self) -> None:
        self._credentials = await self.store.credentials()
        for st in await self.store.list_connector_statuses():
            self._statuses.setdefault(st.charger_id, {})[(st.evse_id, st.connector_id)] = st
        self._boots.start()
        self._status_writes.start()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self._boots.stop()
        await self._status_writes.stop()
        self.seen_persist_s = 0.0  # at shutdown, everything
        await self.flush_seen()

    # -- registration ----------------------------------------------------------------------
    async def register(self, charger_id: str, password: str | None) -> bool:
        """Register (or re-key) a charger; True if it is new."""
        hashed = None if password is None else hash_password(password, os.urandom(16))
        # Known in memory before the write: a second handshake meanwhile must verify against
        # this password, not auto-register again with its own.
        self._credentials[charger_id] = hashed
        self._registered_meanwhile.add(charger_id)
        self._verified.pop(charger_id, None)
        created = await self.store.add_charger(charger_id, hashed, self.clock())
        log.info("charger.registered", charger_id=charger_id, created=created)
        return created

    async def unregister(self, charger_id: str) -> bool:
        self._credentials.pop(charger_id, None)
        self._verified.pop(charger_id, None)
        return await self.store.remove_charger(charger_id)

    async def refresh_credentials(self, page: int = 1000) -> None:
        """Reload every credential (changes by other nodes or the CLI), a page at a time.

        Loading all of them in one go stalled the event loop for ~0.5 s per 20,000 chargers,
        which every charger then saw as latency; pages with a yield in between do not.
        """
        fresh: dict[str, str | None] = {}
        self._registered_meanwhile = set()
        after: str | None = None
        while True:
            rows = await self.store.credentials_page(after, page)
            fresh.update(rows)
            if len(rows) < page:
                break
            after = rows[-1][0]
            await asyncio.sleep(0)
        for cid, h in fresh.items():
            if self._credentials.get(cid) != h:
                self._verified.pop(cid, None)
        # Registrations made on this node while the pages were read stay known; anything else
        # missing from the store was removed (by the CLI or another node) and is dropped.
        for cid in self._registered_meanwhile:
            if cid in self._credentials:
                fresh[cid] = self._credentials[cid]
        self._credentials = fresh

    def _look_up_later(self, charger_id: str) -> None:
        """An unknown id at the handshake may have been registered by the CLI or another node
        since the last refresh: look it up, so its next attempt (chargers retry) gets in. At
        most once a minute per id, so random ids cannot turn into a query storm."""
        mono = time.monotonic()
        if self._lookups.get(charger_id, 0.0) > mono or len(self._lookups) > 10_000:
            return
        self._lookups[charger_id] = mono + 60.0
        task = asyncio.ensure_future(self._look_up(charger_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _look_up(self, charger_id: str) -> None:
        try:
            ch = await self.store.get_charger(charger_id)
        except Exception:
            log.exception("charger.lookup_failed", charger_id=charger_id)
            return
        if ch is not None and charger_id not in self._credentials:
            self._credentials[charger_id] = ch.password_hash
            self._lookups.pop(charger_id, None)
            log.info("charger.credentials_loaded", charger_id=charger_id)

    def admit(self, charger_id: str, password: str | None) -> Admission:
        """Decide at the handshake whether this charger may connect (synchronous)."""
        if charger_id not in self._credentials:
            if self.auto_register:
                return Admission.AUTO_REGISTER
            self._look_up_later(charger_id)
            return Admission.UNKNOWN
        stored = self._credentials[charger_id]
        if stored is None:
            # Registered without a password: only acceptable when the operator chose so.
            return Admission.ACCEPT
        if password is None:
            return Admission.BAD_PASSWORD
        quick = hashlib.sha256(password.encode()).digest()
        known = self._verified.get(charger_id)
        if known is not None and hmac.compare_digest(known, quick):
            return Admission.ACCEPT
        if verify_password(password, stored):
            self._verified[charger_id] = quick
            return Admission.ACCEPT
        return Admission.BAD_PASSWORD

    # -- connection lifecycle ---------------------------------------------------------------
    def connected(self, charger_id: str, version: OcppVersion, remote: str | None) -> None:
        self._seen[charger_id] = self.clock()
        self.bus.publish(
            "charger.connected", {"charger_id": charger_id, "ocpp_version": version.value, "remote": remote}
        )

    def disconnected(self, charger_id: str) -> None:
        self._seen[charger_id] = self.clock()
        self.bus.publish("charger.disconnected", {"charger_id": charger_id})

    def seen(self, charger_id: str) -> None:
        """Any message from a charger counts as a sign of life (cheap: memory only, and the
        clock is read once per event-loop tick, not once per message)."""
        now = self._tick_now
        if now is None:
            now = self._tick_now = self.clock()
            asyncio.get_running_loop().call_soon(self._end_tick)
        self._seen[charger_id] = now

    def _end_tick(self) -> None:
        self._tick_now = None

    async def flush_seen(self, chunk: int = 1000) -> None:
        """Persist last-seen times that moved by more than ``seen_persist_s`` (the live value
        is in memory), in chunks with a yield in between so the event loop never stalls."""
        threshold = timedelta(seconds=self.seen_persist_s)
        due = {
            cid: at
            for cid, at in self._seen.items()
            if cid in self._credentials and (cid not in self._persisted or at - self._persisted[cid] >= threshold)
        }
        items = list(due.items())
        for i in range(0, len(items), chunk):
            part = dict(items[i : i + chunk])
            await self.store.touch_chargers(part)
            self._persisted.update(part)
            await asyncio.sleep(0)

    # -- messages -------------------------------------------------------------------------
    async def boot(self, charger_id: str, info: BootInfo, version: OcppVersion) -> BootDecision:
        await self._boots.add((BootRecord(charger_id=charger_id, info=info, version=version, at=self.clock()),))
        self.bus.publish(
            "charger.booted",
            {"charger_id": charger_id, "vendor": info.vendor, "model": info.model, "ocpp_version": version.value},
        )
        return BootDecision("Accepted", self.heartbeat_interval_s)

    async def status(
        self,
        charger_id: str,
        *,
        evse_id: int,
        connector_id: int,
        raw_status: str,
        error_code: str | None,
        at: datetime,
    ) -> None:
        st = make_status(
            charger_id=charger_id,
            evse_id=evse_id,
            connector_id=connector_id,
            raw_status=raw_status,
            error_code=error_code,
            at=at,
        )
        mine = self._statuses.setdefault(charger_id, {})
        key = (evse_id, connector_id)
        if not supersedes(mine.get(key), st):
            return
        mine[key] = st
        self.bus.publish("connector.status", status_event(st))
        await self._status_writes.add((st,))

    def statuses(self, charger_id: str | None = None) -> list[ConnectorStatus]:
        """The live connector statuses (memory), ordered by charger, EVSE, connector."""
        if charger_id is not None:
            return [st for _, st in sorted(self._statuses.get(charger_id, {}).items())]
        return [st for cid in sorted(self._statuses) for _, st in sorted(self._statuses[cid].items())]

    def with_live_state(self, charger: Charger) -> Charger:
        """The stored charger with what this node knows now: live connector statuses and the
        last time it was heard from (the store has them only as of the last flush)."""
        live = self._statuses.get(charger.id)
        return dataclasses.replace(
            charger,
            connectors=tuple(st for _, st in sorted(live.items())) if live else charger.connectors,
            last_seen_at=self._seen.get(charger.id) or charger.last_seen_at,
        )

    def last_seen(self, charger_id: str) -> datetime | None:
        return self._seen.get(charger_id)

    def notify(self, charger_id: str, kind: str, data: dict[str, object]) -> None:
        """Firmware/diagnostics/log status, security events, reports: published, logged."""
        log.info("charger.notification", charger_id=charger_id, kind=kind)
        self.bus.publish(f"charger.{kind}", {"charger_id": charger_id, **data})

    async def list(self) -> list[Charger]:
        return await self.store.list_chargers()

    async def get(self, charger_id: str) -> Charger | None:
        return await self.store.get_charger(charger_id)
