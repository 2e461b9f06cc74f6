"""Connector status: one vocabulary over OCPP 1.6 and 2.x, and which report wins.

1.6 has nine statuses (Preparing, Charging, SuspendedEV, ... all mean a vehicle is there);
2.x has five. Everything downstream (dashboard, reservations, availability for roaming) reads
:class:`ConnectorState`. A charger that replays buffered StatusNotifications after a reconnect
sends old news: a report older than the one we hold never overwrites it.
"""

from __future__ import annotations

from datetime import datetime

from chargegrid.core.model import ConnectorState, ConnectorStatus

_STATES: dict[str, ConnectorState] = {
    "Available": ConnectorState.AVAILABLE,
    "Preparing": ConnectorState.OCCUPIED,
    "Charging": ConnectorState.OCCUPIED,
    "SuspendedEVSE": ConnectorState.OCCUPIED,
    "SuspendedEV": ConnectorState.OCCUPIED,
    "Finishing": ConnectorState.OCCUPIED,
    "Occupied": ConnectorState.OCCUPIED,
    "Reserved": ConnectorState.RESERVED,
    "Unavailable": ConnectorState.UNAVAILABLE,
    "Faulted": ConnectorState.FAULTED,
}


def normalize_status(raw: str) -> ConnectorState:
    """Map a raw 1.6 or 2.x status string to the shared state; unknown strings are Unavailable.

    Schema validation already rejects unknown strings, so the fallback only guards data that
    was stored by an older version of chargegrid.
    """
    return _STATES.get(raw, ConnectorState.UNAVAILABLE)


def supersedes(current: ConnectorStatus | None, candidate: ConnectorStatus) -> bool:
    """True if ``candidate`` should replace ``current`` as the connector's latest status.

    Ties go to the candidate: two reports with the same timestamp arrive in the order the
    charger sent them.
    """
    return current is None or candidate.updated_at >= current.updated_at


def make_status(
    *,
    charger_id: str,
    evse_id: int,
    connector_id: int,
    raw_status: str,
    error_code: str | None,
    at: datetime,
) -> ConnectorStatus:
    """Build a :class:`ConnectorStatus`; "NoError" is stored as no error at all."""
    return ConnectorStatus(
        charger_id=charger_id,
        evse_id=evse_id,
        connector_id=connector_id,
        status=raw_status,
        state=normalize_status(raw_status),
        error_code=None if error_code in (None, "NoError") else error_code,
        updated_at=at,
    )
