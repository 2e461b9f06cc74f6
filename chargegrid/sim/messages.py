"""Payload builders for the messages a simulated charger sends, per OCPP version.

Rules: pure functions of their arguments (timestamps are passed in as ISO 8601 strings); the
shapes follow the official 1.6 and 2.0.1/2.1 JSON schemas, so a validating CSMS accepts them.
1.6 sends sampled values as strings with ``unit``; 2.x sends numbers with ``unitOfMeasure``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

VENDOR = "chargegrid-sim"
MODEL = "SimCharger"
FIRMWARE = "1.0.0"
VOLTS = 230
PHASES = 3

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
SOC = "SoC"
CURRENT = "Current.Import"


def iso(at: datetime) -> str:
    """UTC timestamp with millisecond precision and a "Z", as most chargers send it."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def boot(v16: bool, serial: str, reason: str = "PowerUp") -> dict[str, Any]:
    if v16:
        return {
            "chargePointVendor": VENDOR,
            "chargePointModel": MODEL,
            "chargePointSerialNumber": serial,
            "firmwareVersion": FIRMWARE,
        }
    return {
        "reason": reason,
        "chargingStation": {
            "model": MODEL,
            "vendorName": VENDOR,
            "serialNumber": serial,
            "firmwareVersion": FIRMWARE,
        },
    }


def status(v16: bool, connector: int, status_: str, ts: str) -> dict[str, Any]:
    """1.6: ``status_`` is a 1.6 ChargePointStatus; 2.x: a ConnectorStatus on EVSE ``connector``."""
    if v16:
        return {"connectorId": connector, "errorCode": "NoError", "status": status_, "timestamp": ts}
    return {"timestamp": ts, "connectorStatus": status_, "evseId": connector, "connectorId": 1}


def authorize(v16: bool, token: str) -> dict[str, Any]:
    if v16:
        return {"idTag": token}
    return {"idToken": id_token(token)}


def id_token(token: str) -> dict[str, Any]:
    return {"idToken": token, "type": "ISO14443"}


def token_status(v16: bool, answer: dict[str, Any] | None) -> str | None:
    """The token status in an Authorize/StartTransaction/TransactionEvent answer, if any."""
    if not answer:
        return None
    info = answer.get("idTagInfo" if v16 else "idTokenInfo")
    if isinstance(info, dict):
        value = info.get("status")
        return value if isinstance(value, str) else None
    return None


def sampled_values(
    v16: bool, *, register_wh: int, power_w: int, soc: float | None, periodic: bool
) -> list[dict[str, Any]]:
    """Energy register, power, per-phase current and (when known) the EV's SoC."""
    context = "Sample.Periodic" if periodic else "Transaction.Begin"
    current = round(power_w / (VOLTS * PHASES), 1)
    rows: list[tuple[str, float, str, str | None, str | None]] = [
        (ENERGY, register_wh, "Wh", "Outlet", None),
        (POWER, power_w, "W", "Outlet", None),
    ]
    if power_w > 0:
        rows += [(CURRENT, current, "A", "Outlet", f"L{n}") for n in range(1, PHASES + 1)]
    if soc is not None:
        rows.append((SOC, round(soc * 100, 1), "Percent", "EV", None))
    out: list[dict[str, Any]] = []
    for measurand, value, unit, location, phase in rows:
        sv: dict[str, Any]
        if v16:
            sv = {
                "value": _fmt(value),
                "context": context,
                "measurand": measurand,
                "unit": unit,
                "location": location,
            }
        else:
            sv = {
                "value": value,
                "context": context,
                "measurand": measurand,
                "unitOfMeasure": {"unit": unit},
                "location": location,
            }
        if phase is not None:
            sv["phase"] = phase
        out.append(sv)
    return out


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def meter_values_16(connector: int, ts: str, values: list[dict[str, Any]]) -> dict[str, Any]:
    """1.6 MeterValues; ``transactionId`` is filled in at send time (it may not be known yet)."""
    return {"connectorId": connector, "meterValue": [{"timestamp": ts, "sampledValue": values}]}


def start_transaction(
    connector: int, token: str, meter_start: int, ts: str, reservation_id: int | None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "connectorId": connector,
        "idTag": token,
        "meterStart": meter_start,
        "timestamp": ts,
    }
    if reservation_id is not None:
        payload["reservationId"] = reservation_id
    return payload


def stop_transaction(meter_stop: int, ts: str, reason: str, token: str) -> dict[str, Any]:
    """1.6 StopTransaction; ``transactionId`` is filled in at send time."""
    return {"meterStop": meter_stop, "timestamp": ts, "reason": reason, "idTag": token}


def transaction_event(
    *,
    event_type: str,
    ts: str,
    trigger: str,
    seq_no: int,
    transaction_id: str,
    evse: int,
    offline: bool,
    charging_state: str | None = None,
    stopped_reason: str | None = None,
    remote_start_id: int | None = None,
    token: str | None = None,
    meter: list[dict[str, Any]] | None = None,
    reservation_id: int | None = None,
) -> dict[str, Any]:
    info: dict[str, Any] = {"transactionId": transaction_id}
    if charging_state is not None:
        info["chargingState"] = charging_state
    if stopped_reason is not None:
        info["stoppedReason"] = stopped_reason
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": ts,
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": info,
        "evse": {"id": evse, "connectorId": 1},
    }
    if offline:
        payload["offline"] = True
    if token is not None:
        payload["idToken"] = id_token(token)
    if meter:
        payload["meterValue"] = [{"timestamp": ts, "sampledValue": meter}]
    if reservation_id is not None:
        payload["reservationId"] = reservation_id
    return payload


def firmware_status(v16: bool, status_: str, request_id: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"status": status_}
    if not v16 and request_id is not None:
        payload["requestId"] = request_id
    return payload
