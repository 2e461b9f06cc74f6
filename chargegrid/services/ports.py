"""The interfaces services need from adapters; one per concern.

Adapters implement these structurally (typing.Protocol), so neither side imports the other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chargegrid.core.commands import Command, CommandResult
from chargegrid.core.model import (
    BootInfo,
    Charger,
    ConnectorStatus,
    IdToken,
    MeterSample,
    OcppVersion,
    Role,
    Session,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKeyRecord:
    id: int
    key_hash: str
    role: Role
    name: str | None
    created_at: datetime
    revoked: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class BootRecord:
    charger_id: str
    info: BootInfo
    version: OcppVersion
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEvent:
    """A 2.x TransactionEvent's identity, kept so a replay is recognised."""

    charger_id: str
    transaction_id: str
    seq_no: int
    event_type: str
    timestamp: datetime


class Store(Protocol):
    """Persistence. Every write is idempotent where the protocol allows replays."""

    async def add_charger(self, charger_id: str, password_hash: str | None, now: datetime) -> bool:
        """Register; False if the id exists (its password is then replaced)."""
        ...

    async def add_chargers(self, chargers: Sequence[tuple[str, str | None]], now: datetime) -> int:
        """Bulk registration of (id, password hash); returns how many were new."""
        ...

    async def remove_charger(self, charger_id: str) -> bool: ...
    async def get_charger(self, charger_id: str) -> Charger | None: ...
    async def list_chargers(self) -> list[Charger]: ...
    async def credentials(self) -> dict[str, str | None]:
        """charger id -> password hash, for the handshake's in-memory check."""
        ...

    async def credentials_page(self, after: str | None, limit: int) -> list[tuple[str, str | None]]:
        """(id, password hash) ordered by id, starting after ``after``: a page of credentials."""
        ...

    async def record_boots(self, boots: Sequence[BootRecord]) -> None: ...
    async def touch_chargers(self, seen: dict[str, datetime]) -> None: ...

    async def save_connector_statuses(self, statuses: Sequence[ConnectorStatus]) -> None:
        """Store each unless what is stored is newer (see core.connectors.supersedes)."""
        ...

    async def list_connector_statuses(self, charger_id: str | None = None) -> list[ConnectorStatus]: ...

    async def upsert_token(self, token: IdToken) -> None: ...
    async def get_token(self, token: str) -> IdToken | None: ...
    async def list_tokens(self) -> list[IdToken]: ...
    async def delete_token(self, token: str) -> bool: ...

    async def add_api_key(self, key_hash: str, role: Role, name: str | None, now: datetime) -> int: ...
    async def get_api_key(self, key_hash: str) -> ApiKeyRecord | None: ...

    async def session_by_start_key(self, charger_id: str, start_key: str) -> Session | None: ...
    async def session_by_transaction(self, charger_id: str, transaction_id: str) -> Session | None: ...
    async def session_by_id(self, session_id: int) -> Session | None: ...
    async def insert_session(self, session: Session) -> Session:
        """Insert; returns it with ``id`` set (and for 1.6 ``transaction_id`` = str(id))."""
        ...

    async def update_session(self, session: Session) -> None: ...
    async def update_live_figures(self, sessions: Sequence[Session]) -> None:
        """Batch-write the meter-driven figures of active sessions; completed ones are left alone."""
        ...
    async def list_sessions(
        self, *, active: bool | None = None, charger_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[Session]: ...

    async def record_transaction_events(self, events: Sequence[StoredEvent]) -> set[tuple[str, str, int]]:
        """Store each (charger, transaction, seqNo) once; returns the keys that were new
        (the others are replays)."""
        ...

    async def forget_transaction_event(self, charger_id: str, transaction_id: str, seq_no: int) -> None:
        """Undo a recorded event identity whose processing failed, so a retry counts."""
        ...

    async def add_meter_samples(self, samples: Sequence[MeterSample]) -> int:
        """Insert a batch; samples already stored (same digest) are skipped. Returns new rows."""
        ...

    async def list_meter_samples(
        self,
        charger_id: str,
        transaction_id: str | None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[MeterSample]:
        """A charger's samples in time order; bound the time window when you can (the index
        is (charger, time)), e.g. a session's start and stop."""
        ...


class Subscription(Protocol):
    """Registered on creation; iterate for (topic, data); ``aclose()`` unsubscribes."""

    def __aiter__(self) -> AsyncIterator[tuple[str, dict[str, Any]]]: ...
    async def __anext__(self) -> tuple[str, dict[str, Any]]: ...
    async def aclose(self) -> None: ...


class EventBus(Protocol):
    """Live events (status changes, session updates) for SSE clients and other nodes."""

    def publish(self, topic: str, data: dict[str, Any]) -> None: ...
    def subscribe(self) -> Subscription: ...


class ChargerOffline(Exception):
    """The charger has no open connection on this node (or any node reachable via the bus)."""


class CommandTimeout(Exception):
    """The charger did not answer within the timeout."""


class CommandRejected(Exception):
    """The charger answered with a CALLERROR, or the command does not exist in its version."""

    def __init__(self, code: str, description: str, *, from_charger: bool = False) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.from_charger = from_charger


class ChargerGateway(Protocol):
    """Sends commands to connected chargers and tells who is connected."""

    async def send(self, charger_id: str, command: Command, timeout: float) -> CommandResult: ...
    def is_connected(self, charger_id: str) -> bool: ...
    def version_of(self, charger_id: str) -> OcppVersion | None: ...
    def message_log(self, charger_id: str, limit: int) -> list[dict[str, Any]]: ...
