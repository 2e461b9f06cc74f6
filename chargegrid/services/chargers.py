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

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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
    ) -> None:
        self.store = store
        self.bus = bus
        self.clock = clock
        self.auto_register = auto_register
        self.heartbeat_interval_s = heartbeat_interval_s
        self._credentials: dict[str, str | None] = {}
        self._verified: dict[str, bytes] = {}
        self._statuses: dict[tuple[str, int, int], ConnectorStatus] = {}
        self._seen: dict[str, datetime] = {}
        # Boots and statuses arrive in storms (a site's power returns, a node restarts):
        # group-committed, each acknowledged after its batch is stored.
        self._boots = GroupCommit(store.record_boots, name="boots")
        self._status_writes = GroupCommit(store.save_connector_statuses, name="statuses")

    async def start(self) -> None:
        self._credentials = await self.store.credentials()
        for st in await self.store.list_connector_statuses():
            self._statuses[(st.charger_id, st.evse_id, st.connector_id)] = st
        self._boots.start()
        self._status_writes.start()

    async def stop(self) -> None:
        await self._boots.stop()
        await self._status_writes.stop()
        await self.flush_seen()

    # -- registration ----------------------------------------------------------------------
    async def register(self, charger_id: str, password: str | None) -> bool:
        """Register (or re-key) a charger; True if it is new."""
        hashed = None if password is None else hash_password(password, os.urandom(16))
        # Known in memory before the write: a second handshake meanwhile must verify against
        # this password, not auto-register again with its own.
        self._credentials[charger_id] = hashed
        self._verified.pop(charger_id, None)
        created = await self.store.add_charger(charger_id, hashed, self.clock())
        log.info("charger.registered", charger_id=charger_id, created=created)
        return created

    async def unregister(self, charger_id: str) -> bool:
        self._credentials.pop(charger_id, None)
        self._verified.pop(charger_id, None)
        return await self.store.remove_charger(charger_id)

    async def refresh_credentials(self) -> None:
        """Reload credentials changed by other nodes or the CLI."""
        fresh = await self.store.credentials()
        for cid, h in fresh.items():
            if self._credentials.get(cid) != h:
                self._verified.pop(cid, None)
        self._credentials = fresh

    def admit(self, charger_id: str, password: str | None) -> Admission:
        """Decide at the handshake whether this charger may connect (synchronous)."""
        if charger_id not in self._credentials:
            return Admission.AUTO_REGISTER if self.auto_register else Admission.UNKNOWN
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
        """Any message from a charger counts as a sign of life (cheap: memory only)."""
        self._seen[charger_id] = self.clock()

    async def flush_seen(self) -> None:
        seen, self._seen = self._seen, {}
        known = {k: v for k, v in seen.items() if k in self._credentials}
        await self.store.touch_chargers(known)

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
        key = (charger_id, evse_id, connector_id)
        if not supersedes(self._statuses.get(key), st):
            return
        self._statuses[key] = st
        self.bus.publish("connector.status", status_event(st))
        await self._status_writes.add((st,))

    def statuses(self, charger_id: str | None = None) -> list[ConnectorStatus]:
        """The live connector statuses (memory), ordered by charger, EVSE, connector."""
        items = sorted(self._statuses.items())
        return [st for (cid, _, _), st in items if charger_id is None or cid == charger_id]

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
