"""The charging session state machine, one for OCPP 1.6 and 2.x.

States: ACTIVE -> COMPLETED, never back. Rules:
- Energy delivered is ``meter_last_wh - meter_start_wh`` (never negative); a stop reading, when
  the charger gives one, is the last reading.
- Stopping a completed session changes nothing (a replayed StopTransaction / Ended event).
- Meter samples only move the latest reading forward in time: a replayed older sample never
  rewinds it, and a completed session's latest reading is final. The start reading is the
  register with the earliest timestamp seen, so a Started event that arrives late still
  counts.
- 2.x events may arrive out of order after an offline period (seqNo tells the order); each is
  merged so that the result does not depend on the order: the start is the earliest time seen,
  the Ended event's data wins whenever it arrives, and the latest reading is the one with the
  newest timestamp.
- ``reservation_id`` and the price fields pass through untouched.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime

from chargegrid.core.meter import energy_register_wh, power_w, soc_percent
from chargegrid.core.model import MeterSample, OcppVersion, Session, SessionStatus

_SESSION_FIELDS = tuple(f.name for f in dataclasses.fields(Session))


def start_key_v16(
    charger_id: str, connector_id: int, id_tag: str, timestamp: datetime, meter_start_wh: int
) -> str:
    """Identity of a 1.6 StartTransaction, so a replay gets the same transactionId back."""
    raw = f"{charger_id}|{connector_id}|{id_tag}|{timestamp.isoformat()}|{meter_start_wh}"
    return hashlib.blake2b(raw.encode(), digest_size=16).hexdigest()


def start_v16(
    *,
    charger_id: str,
    connector_id: int,
    id_tag: str,
    meter_start_wh: int,
    at: datetime,
    reservation_id: int | None = None,
) -> Session:
    """A new 1.6 session; the CSMS assigns ``transaction_id`` once the store gives it an id."""
    return Session(
        id=None,
        charger_id=charger_id,
        evse_id=connector_id,
        connector_id=connector_id,
        transaction_id="",
        ocpp_version=OcppVersion.V16,
        id_token=id_tag,
        status=SessionStatus.ACTIVE,
        started_at=at,
        meter_start_wh=meter_start_wh,
        meter_start_at=at,
        meter_last_wh=meter_start_wh,
        meter_last_at=at,
        start_key=start_key_v16(charger_id, connector_id, id_tag, at, meter_start_wh),
        reservation_id=reservation_id,
        updated_at=at,
    )


def _with_energy(session: Session) -> Session:
    if session.meter_start_wh is None or session.meter_last_wh is None:
        return session
    return dataclasses.replace(session, energy_wh=max(0, session.meter_last_wh - session.meter_start_wh))


def _evolve(session: Session, changes: dict[str, object]) -> Session:
    """``dataclasses.replace`` without re-running ``__init__`` with every field as a keyword:
    this runs for every meter sample of every session, where replace() cost ~7 µs and this ~4."""
    new = object.__new__(Session)
    for name in _SESSION_FIELDS:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(session, name))
    return new


def apply_sample(session: Session, sample: MeterSample) -> Session:
    """Fold one meter sample into a session (see the module rules)."""
    register = energy_register_wh(sample.values)
    changes: dict[str, object] = {}
    start_wh = session.meter_start_wh
    last_wh = session.meter_last_wh
    if register is not None and (session.meter_start_at is None or sample.timestamp < session.meter_start_at):
        start_wh = changes["meter_start_wh"] = register
        changes["meter_start_at"] = sample.timestamp
        if last_wh is None:
            last_wh = changes["meter_last_wh"] = register
            changes["meter_last_at"] = sample.timestamp
    newer = session.meter_last_at is None or sample.timestamp >= session.meter_last_at
    if session.status is SessionStatus.ACTIVE and newer:
        if register is not None:
            last_wh = changes["meter_last_wh"] = register
            changes["meter_last_at"] = sample.timestamp
        power = power_w(sample.values)
        if power is not None:
            changes["power_w"] = power
        soc = soc_percent(sample.values)
        if soc is not None:
            changes["soc_percent"] = soc
        changes["updated_at"] = max(session.updated_at or sample.timestamp, sample.timestamp)
    if not changes:
        return session
    if start_wh is not None and last_wh is not None:
        changes["energy_wh"] = max(0, last_wh - start_wh)
    return _evolve(session, changes)


def stop(session: Session, *, at: datetime, meter_stop_wh: int | None, reason: str | None) -> Session:
    """Complete a session; a second stop is a no-op so replays are harmless."""
    if session.status is SessionStatus.COMPLETED:
        return session
    changes: dict[str, object] = {
        "status": SessionStatus.COMPLETED,
        "stopped_at": at,
        "stop_reason": reason or "Local",
        "power_w": 0,
        "updated_at": at,
    }
    if meter_stop_wh is not None:
        changes["meter_last_wh"] = meter_stop_wh
        changes["meter_last_at"] = at
        if session.meter_start_wh is None:
            changes["meter_start_wh"] = meter_stop_wh
            changes["meter_start_at"] = at
    return _with_energy(dataclasses.replace(session, **changes))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True, kw_only=True)
class TxEvent:
    """A 2.x TransactionEvent, normalised. ``event_type`` is Started, Updated or Ended."""

    event_type: str
    transaction_id: str
    seq_no: int
    timestamp: datetime
    evse_id: int
    connector_id: int
    id_token: str | None
    stopped_reason: str | None
    samples: tuple[MeterSample, ...]


def apply_event(session: Session | None, ev: TxEvent, *, charger_id: str, version: OcppVersion) -> Session:
    """Merge a 2.x transaction event into the session it belongs to (None: first seen)."""
    if session is None:
        session = Session(
            id=None,
            charger_id=charger_id,
            evse_id=ev.evse_id,
            connector_id=ev.connector_id,
            transaction_id=ev.transaction_id,
            ocpp_version=version,
            id_token=ev.id_token,
            status=SessionStatus.ACTIVE,
            started_at=ev.timestamp,
            last_seq_no=ev.seq_no,
            updated_at=ev.timestamp,
        )
    else:
        changes: dict[str, object] = {"last_seq_no": max(session.last_seq_no or 0, ev.seq_no)}
        if ev.timestamp < session.started_at:
            changes["started_at"] = ev.timestamp
        if ev.id_token and not session.id_token:
            changes["id_token"] = ev.id_token
        if ev.evse_id and not session.evse_id:
            changes["evse_id"] = ev.evse_id
            changes["connector_id"] = ev.connector_id
        session = dataclasses.replace(session, **changes)  # type: ignore[arg-type]
    if ev.event_type == "Ended" and session.status is SessionStatus.ACTIVE:
        # Fold the Ended event's own readings in before closing, so its final register counts.
        for sample in sorted(ev.samples, key=lambda s: s.timestamp):
            session = apply_sample(session, sample)
        return stop(session, at=ev.timestamp, meter_stop_wh=None, reason=ev.stopped_reason)
    for sample in sorted(ev.samples, key=lambda s: s.timestamp):
        session = apply_sample(session, sample)
    return session
