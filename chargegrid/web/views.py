"""What the dashboard's templates show, built from the services, and how numbers are written.

Rules:
- Views read live state from memory (connector statuses, active sessions, the message log)
  and only list chargers and completed sessions from the store, so a page costs one or two
  queries however busy the chargers are.
- Numbers are rounded exactly the way ``static/dashboard.js`` rounds them (half up, via
  ``floor(x + 0.5)`` on the same float), so a value rendered by the server and the same value
  pushed live never differ in the last digit and a test can assert either.
- Times are shown in UTC, ``YYYY-MM-DD HH:MM:SS``, again like the script.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from chargegrid.core.model import Charger, ConnectorStatus, OcppVersion, Session
from chargegrid.services.platform import Platform

# A frame can be 64 KiB; the log shows the start of a big one rather than a wall of text.
FRAME_DISPLAY_CHARS = 2000
LOG_LIMIT = 100
RECENT_SESSIONS = 25


# -- formatting (Jinja filters) -------------------------------------------------------------
def kw(power_w: int | float | None) -> str:
    """Power in W as kW with one decimal, or an em dash when the charger never reported it."""
    if power_w is None:
        return "—"
    return f"{math.floor(power_w / 100 + 0.5) / 10:.1f}"


def kwh(energy_wh: int | float | None) -> str:
    """Energy in Wh as kWh with two decimals."""
    if energy_wh is None:
        return "—"
    return f"{math.floor(energy_wh / 10 + 0.5) / 100:.2f}"


def soc(percent: float | None) -> str:
    if percent is None:
        return "—"
    return f"{math.floor(percent + 0.5)} %"


def when(at: datetime | float | None) -> str:
    """A UTC timestamp (datetime or epoch seconds) as ``YYYY-MM-DD HH:MM:SS``."""
    if at is None:
        return "—"
    if isinstance(at, int | float):
        at = datetime.fromtimestamp(at, UTC)
    elif at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # the store promises UTC; never let the host's zone leak in
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def when_ms(at: float) -> str:
    """Epoch seconds as ``YYYY-MM-DD HH:MM:SS.mmm`` UTC: log frames come many to a second."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def duration(start: datetime | None, end: datetime | None) -> str:
    """``H:MM:SS`` between two instants (a completed session's length)."""
    if start is None or end is None:
        return "—"
    seconds = max(0, int((end - start).total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def version_label(version: OcppVersion | str | None) -> str:
    """``ocpp2.0.1`` -> ``2.0.1``: the prefix is the same for every charger, so it is noise."""
    if version is None:
        return "—"
    return str(version.value if isinstance(version, OcppVersion) else version).removeprefix("ocpp")


def connector_key(st: ConnectorStatus) -> str:
    """The ``data-connector`` key the live script looks badges up by: ``charger/evse/connector``."""
    return f"{st.charger_id}/{st.evse_id}/{st.connector_id}"


FILTERS: dict[str, Any] = {
    "kw": kw,
    "kwh": kwh,
    "soc": soc,
    "when": when,
    "when_ms": when_ms,
    "duration": duration,
    "version": version_label,
    "ckey": connector_key,
}


# -- view models -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerView:
    id: str
    connected: bool
    ocpp_version: OcppVersion | None
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None
    registered_at: datetime | None
    last_boot_at: datetime | None
    last_seen: datetime | None
    connectors: tuple[ConnectorStatus, ...]

    @property
    def outlets(self) -> tuple[ConnectorStatus, ...]:
        """Connectors proper: 1.6's connectorId 0 reports on the whole charger, not an outlet."""
        return tuple(c for c in self.connectors if c.evse_id > 0 or c.connector_id > 0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Summary:
    online: int
    total: int
    sessions: int
    power_w: int


@dataclass(frozen=True, slots=True, kw_only=True)
class LogEntry:
    at: float
    direction: str
    kind: str
    message_id: str
    action: str
    text: str
    truncated: int


def charger_view(p: Platform, stored: Charger) -> ChargerView:
    ch = p.chargers.with_live_state(stored)
    return ChargerView(
        id=ch.id,
        connected=p.gateway.is_connected(ch.id),
        ocpp_version=p.gateway.version_of(ch.id) or ch.ocpp_version,
        vendor=ch.vendor,
        model=ch.model,
        serial_number=ch.serial_number,
        firmware_version=ch.firmware_version,
        registered_at=ch.registered_at,
        last_boot_at=ch.last_boot_at,
        last_seen=ch.last_seen_at,
        connectors=ch.connectors,
    )


async def charger_views(p: Platform) -> list[ChargerView]:
    """Every registered charger with its live statuses."""
    return [charger_view(p, ch) for ch in sorted(await p.chargers.list(), key=lambda c: c.id)]


def summary(p: Platform, chargers: list[ChargerView]) -> Summary:
    active = p.transactions.active_sessions()
    return Summary(
        online=sum(1 for c in chargers if c.connected),
        total=len(chargers),
        sessions=len(active),
        power_w=sum(s.power_w or 0 for s in active),
    )


def active_sessions(p: Platform, charger_id: str | None = None) -> list[Session]:
    return [s for s in p.transactions.active_sessions() if charger_id is None or s.charger_id == charger_id]


async def completed_sessions(p: Platform, charger_id: str | None = None) -> list[Session]:
    return await p.transactions.list_sessions(active=False, charger_id=charger_id, limit=RECENT_SESSIONS)


def message_log(p: Platform, charger_id: str, limit: int = LOG_LIMIT) -> list[LogEntry]:
    """The charger's recent frames, newest first, each labelled with its OCPP action.

    A CALLRESULT or CALLERROR carries only the message id; its action is found from the CALL
    it answers, which went the other way with the same id (if it is still in the log).
    """
    raw = p.gateway.message_log(charger_id, limit)
    parsed: list[tuple[dict[str, Any], Any]] = []
    calls: dict[tuple[str, str], str] = {}
    for e in raw:
        try:
            frame = json.loads(e["frame"])
        except ValueError:
            frame = None
        parsed.append((e, frame))
        if isinstance(frame, list) and len(frame) >= 3 and frame[0] == 2:
            calls[(str(e["direction"]), str(frame[1]))] = str(frame[2])
    out = []
    for e, frame in parsed:
        kind, mid, action = "?", "", ""
        if isinstance(frame, list) and len(frame) >= 2 and frame[0] in (2, 3, 4):
            kind = {2: "CALL", 3: "RESULT", 4: "ERROR"}[frame[0]]
            mid = str(frame[1])
            if frame[0] == 2:
                action = str(frame[2]) if len(frame) > 2 else ""
            else:
                answered = "out" if e["direction"] == "in" else "in"
                action = calls.get((answered, mid), "")
        text = str(e["frame"])
        out.append(
            LogEntry(
                at=float(e["at"]),
                direction=str(e["direction"]),
                kind=kind,
                message_id=mid,
                action=action,
                text=text[:FRAME_DISPLAY_CHARS],
                truncated=max(0, len(text) - FRAME_DISPLAY_CHARS),
            )
        )
    return out
