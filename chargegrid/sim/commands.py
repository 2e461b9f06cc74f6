"""Answers to CSMS-initiated CALLs, per OCPP version, for a simulated charger.

Rules: a handler answers at once from the charger's state and returns the reply payload plus an
optional follow-up, which the reader runs after the reply is on the wire (so a RemoteStart's
StartTransaction never overtakes the "Accepted"). Follow-ups only change state and queue
messages; the charger's loop sends them. Actions missing from the tables get CALLERROR
NotImplemented. Bad payloads raise (KeyError, TypeError, ...) and become FormationViolation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chargegrid.sim import messages as m

if TYPE_CHECKING:
    from chargegrid.sim.charger import SimCharger

Payload = dict[str, Any]
Follow = Callable[[], None]
Reply = tuple[Payload, Follow | None]


# 1.6 --------------------------------------------------------------------


def _h16_remote_start(ch: SimCharger, p: Payload) -> Reply:
    ok, follow = ch._remote_start(p.get("connectorId"), str(p["idTag"]), p.get("chargingProfile"), None)
    return {"status": "Accepted" if ok else "Rejected"}, follow


def _h16_remote_stop(ch: SimCharger, p: Payload) -> Reply:
    conn = ch._find_session(p["transactionId"])
    if conn is None:
        return {"status": "Rejected"}, None
    return {"status": "Accepted"}, lambda: ch._end(conn, "remote")


def _h16_reset(ch: SimCharger, p: Payload) -> Reply:
    kind = "hard" if p["type"] == "Hard" else "soft"
    return {"status": "Accepted"}, lambda: ch._schedule_reset(kind)


def _h16_change_availability(ch: SimCharger, p: Payload) -> Reply:
    status, follow = ch._change_availability(p["connectorId"], p["type"] == "Operative")
    return {"status": status}, follow


def _h16_unlock(ch: SimCharger, p: Payload) -> Reply:
    found = ch._connector(p["connectorId"]) is not None
    return {"status": "Unlocked" if found else "NotSupported"}, None


def _h16_trigger(ch: SimCharger, p: Payload) -> Reply:
    status = ch._trigger(str(p["requestedMessage"]), p.get("connectorId"))
    return {"status": status}, None


def _config_keys(ch: SimCharger) -> dict[str, tuple[str, bool]]:
    keys = {
        "HeartbeatInterval": (str(ch._heartbeat_interval), False),
        "MeterValueSampleInterval": (str(int(ch._meter_interval_s)), False),
        "NumberOfConnectors": (str(len(ch.connectors)), True),
    }
    keys.update({k: (v, False) for k, v in ch._settings.items() if k not in keys})
    return keys


def _h16_get_configuration(ch: SimCharger, p: Payload) -> Reply:
    keys = _config_keys(ch)
    wanted = p.get("key") or list(keys)
    known = [{"key": k, "readonly": keys[k][1], "value": keys[k][0]} for k in wanted if k in keys]
    unknown = [k for k in wanted if k not in keys]
    reply: Payload = {"configurationKey": known}
    if unknown:
        reply["unknownKey"] = unknown
    return reply, None


def _apply_setting(ch: SimCharger, key: str, value: str) -> bool:
    if key in ("HeartbeatInterval", "MeterValueSampleInterval", "TxUpdatedInterval"):
        seconds = _number(value)
        if seconds <= 0:
            return False
        if key == "HeartbeatInterval":
            ch._heartbeat_s = min(seconds, ch.config.heartbeat_cap_s)
            ch._heartbeat_interval = int(seconds)
            ch._next_heartbeat_at = min(ch._next_heartbeat_at, ch._now() + ch._heartbeat_s)
        else:
            ch._meter_interval_s = seconds
    ch._settings[key] = value
    return True


def _h16_change_configuration(ch: SimCharger, p: Payload) -> Reply:
    key, value = str(p["key"]), str(p["value"])
    if key == "NumberOfConnectors":
        return {"status": "Rejected"}, None
    return {"status": "Accepted" if _apply_setting(ch, key, value) else "Rejected"}, None


def _h16_reserve_now(ch: SimCharger, p: Payload) -> Reply:
    status, follow = ch._reserve(p["connectorId"], int(p["reservationId"]), str(p["idTag"]), str(p["expiryDate"]))
    return {"status": status}, follow


def _h16_cancel_reservation(ch: SimCharger, p: Payload) -> Reply:
    return {"status": "Accepted" if ch._cancel_reservation(p["reservationId"]) else "Rejected"}, None


def _h16_set_profile(ch: SimCharger, p: Payload) -> Reply:
    ok = ch._set_limit(p["connectorId"], p["csChargingProfiles"]["chargingSchedule"])
    return {"status": "Accepted" if ok else "Rejected"}, None


def _h_clear_profile(ch: SimCharger, p: Payload) -> Reply:
    for conn in ch.connectors:
        conn.limit_w = None
    return {"status": "Accepted"}, None


def _h_data_transfer(ch: SimCharger, p: Payload) -> Reply:
    return {"status": "UnknownVendorId"}, None


def _h16_update_firmware(ch: SimCharger, p: Payload) -> Reply:
    return {}, lambda: ch._firmware_steps(None)


# 2.0.1 / 2.1 ------------------------------------------------------------


def _h2_request_start(ch: SimCharger, p: Payload) -> Reply:
    token = str(p["idToken"]["idToken"])
    remote_id = p.get("remoteStartId")
    ok, follow = ch._remote_start(
        p.get("evseId"),
        token,
        p.get("chargingProfile"),
        remote_id if isinstance(remote_id, int) else None,
    )
    return {"status": "Accepted" if ok else "Rejected"}, follow


def _h2_request_stop(ch: SimCharger, p: Payload) -> Reply:
    conn = ch._find_session(p["transactionId"])
    if conn is None:
        return {"status": "Rejected"}, None
    return {"status": "Accepted"}, lambda: ch._end(conn, "remote")


def _h2_reset(ch: SimCharger, p: Payload) -> Reply:
    if p["type"] == "OnIdle" and any(c.session is not None for c in ch.connectors):
        ch._reset_on_idle = True
        return {"status": "Scheduled"}, None
    return {"status": "Accepted"}, lambda: ch._schedule_reset("hard")


def _h2_change_availability(ch: SimCharger, p: Payload) -> Reply:
    evse = p.get("evse")
    number = evse.get("id") if isinstance(evse, dict) else None
    status, follow = ch._change_availability(number, p["operationalStatus"] == "Operative")
    return {"status": status}, follow


def _h2_unlock(ch: SimCharger, p: Payload) -> Reply:
    conn = ch._connector(p["evseId"])
    if conn is None:
        return {"status": "UnknownConnector"}, None
    if conn.session is not None:
        return {"status": "OngoingAuthorizedTransaction"}, None
    return {"status": "Unlocked"}, None


def _h2_trigger(ch: SimCharger, p: Payload) -> Reply:
    evse = p.get("evse")
    number = evse.get("id") if isinstance(evse, dict) else None
    return {"status": ch._trigger(str(p["requestedMessage"]), number)}, None


def _variables(ch: SimCharger) -> dict[tuple[str, str], tuple[str, bool]]:
    """(component, variable) -> (value, read-only)."""
    known = {
        ("OCPPCommCtrlr", "HeartbeatInterval"): (str(ch._heartbeat_interval), False),
        ("SampledDataCtrlr", "TxUpdatedInterval"): (str(int(ch._meter_interval_s)), False),
        ("ChargingStation", "VendorName"): (m.VENDOR, True),
        ("ChargingStation", "Model"): (m.MODEL, True),
    }
    for name, value in ch._settings.items():
        component, _, variable = name.partition(".")
        if variable:
            known.setdefault((component, variable), (value, False))
    return known


def _h2_get_variables(ch: SimCharger, p: Payload) -> Reply:
    known = _variables(ch)
    results = []
    for item in p["getVariableData"]:
        component, variable = item["component"], item["variable"]
        key = (str(component["name"]), str(variable["name"]))
        result: Payload = {"component": component, "variable": variable}
        if key in known:
            result |= {"attributeStatus": "Accepted", "attributeValue": known[key][0]}
        elif any(k[0] == key[0] for k in known):
            result["attributeStatus"] = "UnknownVariable"
        else:
            result["attributeStatus"] = "UnknownComponent"
        results.append(result)
    return {"getVariableResult": results}, None


def _h2_set_variables(ch: SimCharger, p: Payload) -> Reply:
    known = _variables(ch)
    results = []
    for item in p["setVariableData"]:
        component, variable = item["component"], item["variable"]
        key = (str(component["name"]), str(variable["name"]))
        if key in known and known[key][1]:
            status = "Rejected"
        elif _apply_setting(ch, key[1], str(item["attributeValue"])):
            ch._settings[f"{key[0]}.{key[1]}"] = str(item["attributeValue"])
            status = "Accepted"
        else:
            status = "Rejected"
        results.append({"attributeStatus": status, "component": component, "variable": variable})
    return {"setVariableResult": results}, None


def _h2_reserve_now(ch: SimCharger, p: Payload) -> Reply:
    status, follow = ch._reserve(p.get("evseId"), int(p["id"]), str(p["idToken"]["idToken"]), str(p["expiryDateTime"]))
    return {"status": status}, follow


def _h2_cancel_reservation(ch: SimCharger, p: Payload) -> Reply:
    return {"status": "Accepted" if ch._cancel_reservation(p["reservationId"]) else "Rejected"}, None


def _h2_set_profile(ch: SimCharger, p: Payload) -> Reply:
    schedule = p["chargingProfile"]["chargingSchedule"]
    ok = ch._set_limit(p["evseId"], schedule[0] if isinstance(schedule, list) else schedule)
    return {"status": "Accepted" if ok else "Rejected"}, None


def _h2_update_firmware(ch: SimCharger, p: Payload) -> Reply:
    request_id = p.get("requestId")
    return {"status": "Accepted"}, lambda: ch._firmware_steps(request_id if isinstance(request_id, int) else None)


HANDLERS_16: dict[str, Callable[[SimCharger, Payload], Reply]] = {
    "RemoteStartTransaction": _h16_remote_start,
    "RemoteStopTransaction": _h16_remote_stop,
    "Reset": _h16_reset,
    "ChangeAvailability": _h16_change_availability,
    "UnlockConnector": _h16_unlock,
    "TriggerMessage": _h16_trigger,
    "GetConfiguration": _h16_get_configuration,
    "ChangeConfiguration": _h16_change_configuration,
    "ReserveNow": _h16_reserve_now,
    "CancelReservation": _h16_cancel_reservation,
    "SetChargingProfile": _h16_set_profile,
    "ClearChargingProfile": _h_clear_profile,
    "DataTransfer": _h_data_transfer,
    "UpdateFirmware": _h16_update_firmware,
}
HANDLERS_2X: dict[str, Callable[[SimCharger, Payload], Reply]] = {
    "RequestStartTransaction": _h2_request_start,
    "RequestStopTransaction": _h2_request_stop,
    "Reset": _h2_reset,
    "ChangeAvailability": _h2_change_availability,
    "UnlockConnector": _h2_unlock,
    "TriggerMessage": _h2_trigger,
    "GetVariables": _h2_get_variables,
    "SetVariables": _h2_set_variables,
    "ReserveNow": _h2_reserve_now,
    "CancelReservation": _h2_cancel_reservation,
    "SetChargingProfile": _h2_set_profile,
    "ClearChargingProfile": _h_clear_profile,
    "DataTransfer": _h_data_transfer,
    "UpdateFirmware": _h2_update_firmware,
}


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0
