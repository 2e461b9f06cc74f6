"""Commands to chargers, stated once whatever OCPP version the charger speaks.

Each version module in ``ocpp/`` translates these to its own action and payload, and the
answer back to a :class:`CommandResult`. A reservation or a charging profile is thus one
concept for the services above, as the booking and energy features need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteStart:
    id_token: str
    evse_id: int | None = None
    connector_id: int | None = None
    remote_start_id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoteStop:
    transaction_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reset:
    """``hard``: reboot now. 1.6 Hard/Soft; 2.x Immediate/OnIdle."""

    hard: bool = False
    evse_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeAvailability:
    operative: bool
    evse_id: int = 0
    connector_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnlockConnector:
    evse_id: int
    connector_id: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class TriggerMessage:
    """``message`` is the OCPP name, e.g. StatusNotification, MeterValues, BootNotification."""

    message: str
    evse_id: int | None = None
    connector_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetConfiguration:
    """1.6 only."""

    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeConfiguration:
    """1.6 only."""

    key: str
    value: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VariableRef:
    component: str
    variable: str
    instance: str | None = None
    evse_id: int | None = None
    attribute_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetVariables:
    """2.x only."""

    variables: tuple[VariableRef, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SetVariables:
    """2.x only: each entry is a variable and the value to set."""

    values: tuple[tuple[VariableRef, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateFirmware:
    location: str
    retrieve_at: datetime
    retries: int | None = None
    retry_interval_s: int | None = None
    request_id: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ReserveNow:
    """Hold an EVSE for a token until ``expires_at`` (sent shortly before a booked slot)."""

    reservation_id: int
    id_token: str
    expires_at: datetime
    evse_id: int | None = None
    connector_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class SetChargingLimit:
    """A simple absolute limit profile (TxDefault or for one transaction), in W or A."""

    evse_id: int
    limit: float
    unit: str = "W"
    profile_id: int = 1
    stack_level: int = 0
    transaction_id: str | None = None
    phases: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DataTransfer:
    vendor_id: str
    message_id: str | None = None
    data: str | None = None


Command = (
    RemoteStart
    | RemoteStop
    | Reset
    | ChangeAvailability
    | UnlockConnector
    | TriggerMessage
    | GetConfiguration
    | ChangeConfiguration
    | GetVariables
    | SetVariables
    | UpdateFirmware
    | ReserveNow
    | CancelReservation
    | SetChargingLimit
    | DataTransfer
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult:
    """The charger's answer: ``status`` is its status field (Accepted, Rejected, ...) when it
    has one, and ``payload`` the whole CALLRESULT payload."""

    action: str
    status: str | None
    payload: dict[str, Any] = field(default_factory=dict)
