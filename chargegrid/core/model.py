"""Value types shared by every layer.

Rules: values are frozen dataclasses (slots, kw_only); energy is Wh and power W as integers;
times are timezone-aware UTC datetimes; identifiers are the charger's own strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


class OcppVersion(StrEnum):
    """The WebSocket subprotocol names; the value is what goes on the wire."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"
    V21 = "ocpp2.1"

    @property
    def is_2x(self) -> bool:
        return self is not OcppVersion.V16


class TokenStatus(StrEnum):
    """An ID token's standing, as OCPP reports it back to the charger."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"


class ConnectorState(StrEnum):
    """One vocabulary for 1.6's nine statuses and 2.x's five.

    Later features (reservations, queues, availability for OCPI) reason about this state only,
    never about a version's raw status string.
    """

    AVAILABLE = "Available"
    OCCUPIED = "Occupied"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


class SessionStatus(StrEnum):
    ACTIVE = "Active"
    COMPLETED = "Completed"


class Role(StrEnum):
    """Operator API roles: viewers read; operators also send commands; admins also manage keys."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"

    def may_command(self) -> bool:
        return self is not Role.VIEWER

    def may_administer(self) -> bool:
        return self is Role.ADMIN


@dataclass(frozen=True, slots=True, kw_only=True)
class IdToken:
    """A driver's credential (RFID card, app account, ...).

    ``expires_at`` of None means the token never expires.
    """

    token: str
    type: str = "ISO14443"
    status: TokenStatus = TokenStatus.ACCEPTED
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BootInfo:
    """What a charger tells about itself in BootNotification (normalised across versions)."""

    vendor: str
    model: str
    serial_number: str | None = None
    firmware_version: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorStatus:
    """The latest known status of one connector.

    ``evse_id`` is 0 and ``connector_id`` 0 for the charger as a whole (1.6 connectorId 0).
    For 1.6 chargers evse_id equals connector_id (1.6 has one connector per EVSE).
    """

    charger_id: str
    evse_id: int
    connector_id: int
    status: str
    state: ConnectorState
    error_code: str | None
    updated_at: datetime


class SampledValue(NamedTuple):
    """One measurement, normalised to base units (Wh, W, A, V, %).

    A NamedTuple rather than the house-style frozen dataclass: several are built per
    MeterValues call on the hot path, and a frozen dataclass costs ~3 µs each to build
    against ~0.4 µs for a tuple. It is just as immutable.
    """

    measurand: str
    value: float
    unit: str
    phase: str | None = None
    location: str | None = None
    context: str | None = None


class MeterSample(NamedTuple):
    """All values a charger measured at one instant on one connector (a NamedTuple for the
    same hot-path reason as :class:`SampledValue`).

    ``digest`` identifies the sample's content so that a replayed MeterValues stores nothing
    twice, while two different samples at the same timestamp are both kept.
    """

    charger_id: str
    evse_id: int
    connector_id: int
    transaction_id: str | None
    timestamp: datetime
    values: tuple[SampledValue, ...]
    digest: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A charging session: one OCPP transaction, whatever the version.

    ``transaction_id`` is the charger's 2.x transactionId, or for 1.6 the id the CSMS assigned
    (the session's own ``id`` as a string). ``energy_wh`` is the energy delivered so far (final
    once COMPLETED). ``reservation_id`` and the price fields are carried for the booking and
    payment features; the session state machine leaves them alone.
    """

    id: int | None
    charger_id: str
    evse_id: int
    connector_id: int
    transaction_id: str
    ocpp_version: OcppVersion
    id_token: str | None
    status: SessionStatus
    started_at: datetime
    stopped_at: datetime | None = None
    meter_start_wh: int | None = None
    meter_start_at: datetime | None = None
    meter_last_wh: int | None = None
    meter_last_at: datetime | None = None
    energy_wh: int = 0
    power_w: int | None = None
    soc_percent: float | None = None
    stop_reason: str | None = None
    last_seq_no: int | None = None
    start_key: str | None = None
    reservation_id: int | None = None
    currency: str | None = None
    price_total: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Charger:
    """A registered charging station and what it last told about itself."""

    id: str
    password_hash: str | None
    vendor: str | None = None
    model: str | None = None
    serial_number: str | None = None
    firmware_version: str | None = None
    ocpp_version: OcppVersion | None = None
    registered_at: datetime | None = None
    last_boot_at: datetime | None = None
    last_seen_at: datetime | None = None
    connectors: tuple[ConnectorStatus, ...] = field(default=())
