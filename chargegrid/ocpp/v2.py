"""OCPP 2.0.1 and 2.1: charger messages to service calls, commands to 2.x frames.

2.1 keeps 2.0.1's messages for everything chargegrid handles here, so one module serves both;
the schemas (validated before these handlers run) are per version. Transactions are reported
by TransactionEvent (Started / Updated / Ended) with the charger's own transactionId and a
seqNo; the service records each (transactionId, seqNo) once, so replays are harmless.
"""

from __future__ import annotations

from typing import Any

from chargegrid.core import commands as c
from chargegrid.core.meter import make_sample, parse_timestamp, values_v2
from chargegrid.core.model import BootInfo, MeterSample, TokenStatus
from chargegrid.core.sessions import TxEvent
from chargegrid.ocpp.common import (
    Context,
    Handler,
    Payload,
    Reply,
    Services,
    Unsupported,
    data_transfer,
    decode_result,
    done,
    iso,
)


def _id_token_info(status: TokenStatus, expires: Any = None) -> Payload:
    info: Payload = {"status": status.value}
    if expires is not None:
        info["cacheExpiryDateTime"] = iso(expires)
    return info


def _samples(
    ctx: Context, evse_id: int, connector_id: int, tx: str | None, meter_values: Any
) -> tuple[MeterSample, ...]:
    return tuple(
        make_sample(
            charger_id=ctx.charger_id,
            evse_id=evse_id,
            connector_id=connector_id,
            transaction_id=tx,
            timestamp=parse_timestamp(mv["timestamp"]),
            values=values_v2(mv["sampledValue"]),
        )
        for mv in meter_values
    )


def _var(ref: c.VariableRef) -> Payload:
    component: Payload = {"name": ref.component}
    if ref.instance is not None:
        component["instance"] = ref.instance
    if ref.evse_id is not None:
        component["evse"] = {"id": ref.evse_id}
    entry: Payload = {"component": component, "variable": {"name": ref.variable}}
    if ref.attribute_type is not None:
        entry["attributeType"] = ref.attribute_type
    return entry


class V2:
    def __init__(self, services: Services) -> None:
        self.s = services
        notify = self._notify
        self.handlers: dict[str, Handler] = {
            "BootNotification": self.boot,
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status,
            "Authorize": self.authorize,
            "TransactionEvent": self.transaction_event,
            "MeterValues": self.meter_values,
            "NotifyReport": notify("report", lambda p: {"request_id": p["requestId"], "seq_no": p["seqNo"]}),
            "NotifyEvent": notify("event", lambda p: {"seq_no": p["seqNo"], "events": len(p["eventData"])}),
            "SecurityEventNotification": notify(
                "security_event", lambda p: {"type": p["type"], "tech_info": p.get("techInfo")}
            ),
            "FirmwareStatusNotification": notify("firmware_status", lambda p: {"status": p["status"]}),
            "LogStatusNotification": notify("log_status", lambda p: {"status": p["status"]}),
        }

    def _notify(self, kind: str, extract: Any) -> Handler:
        def handler(ctx: Context, p: Payload) -> Reply:
            self.s.chargers.notify(ctx.charger_id, kind, extract(p))
            return {}

        return handler

    # -- inbound ---------------------------------------------------------------------------
    async def boot(self, ctx: Context, p: Payload) -> Payload:
        station = p["chargingStation"]
        info = BootInfo(
            vendor=station["vendorName"],
            model=station["model"],
            serial_number=station.get("serialNumber"),
            firmware_version=station.get("firmwareVersion"),
            reason=p["reason"],
        )
        decision = await self.s.chargers.boot(ctx.charger_id, info, ctx.version)
        return {"status": decision.status, "currentTime": iso(self.s.chargers.clock()), "interval": decision.interval_s}

    def heartbeat(self, ctx: Context, p: Payload) -> Reply:
        return {"currentTime": iso(self.s.chargers.clock())}

    def status(self, ctx: Context, p: Payload) -> Reply:
        return done(
            self.s.chargers.status(
                ctx.charger_id,
                evse_id=p["evseId"],
                connector_id=p["connectorId"],
                raw_status=p["connectorStatus"],
                error_code=None,
                at=parse_timestamp(p["timestamp"]),
            )
        )

    async def authorize(self, ctx: Context, p: Payload) -> Payload:
        status, expires = await self.s.transactions.authorize(p["idToken"]["idToken"])
        return {"idTokenInfo": _id_token_info(status, expires)}

    async def transaction_event(self, ctx: Context, p: Payload) -> Payload:
        info = p["transactionInfo"]
        tx = info["transactionId"]
        evse = p.get("evse") or {}
        live = self.s.transactions.live(ctx.charger_id, tx)
        evse_id = evse.get("id") or (live.evse_id if live else 0)
        connector_id = evse.get("connectorId") or (live.connector_id if live else 1 if evse_id else 0)
        token = (p.get("idToken") or {}).get("idToken")
        ev = TxEvent(
            event_type=p["eventType"],
            transaction_id=tx,
            seq_no=p["seqNo"],
            timestamp=parse_timestamp(p["timestamp"]),
            evse_id=evse_id,
            connector_id=connector_id,
            id_token=token,
            stopped_reason=info.get("stoppedReason"),
            samples=_samples(ctx, evse_id, connector_id, tx, p.get("meterValue") or ()),
        )
        await self.s.transactions.transaction_event(ctx.charger_id, ctx.version, ev)
        if token is not None:
            status, expires = await self.s.transactions.authorize(token)
            return {"idTokenInfo": _id_token_info(status, expires)}
        return {}

    def meter_values(self, ctx: Context, p: Payload) -> Reply:
        evse_id = p["evseId"]
        samples = _samples(ctx, evse_id, 1 if evse_id else 0, None, p["meterValue"])
        return self.s.transactions.meter_values(samples)

    # -- outbound --------------------------------------------------------------------------
    def encode_command(self, cmd: c.Command) -> tuple[str, Payload]:
        match cmd:
            case c.RemoteStart():
                p: Payload = {
                    "idToken": {"idToken": cmd.id_token, "type": "Central"},
                    "remoteStartId": cmd.remote_start_id,
                }
                if cmd.evse_id is not None:
                    p["evseId"] = cmd.evse_id
                return "RequestStartTransaction", p
            case c.RemoteStop():
                return "RequestStopTransaction", {"transactionId": cmd.transaction_id}
            case c.Reset():
                p = {"type": "Immediate" if cmd.hard else "OnIdle"}
                if cmd.evse_id is not None:
                    p["evseId"] = cmd.evse_id
                return "Reset", p
            case c.ChangeAvailability():
                p = {"operationalStatus": "Operative" if cmd.operative else "Inoperative"}
                if cmd.evse_id:
                    evse: Payload = {"id": cmd.evse_id}
                    if cmd.connector_id is not None:
                        evse["connectorId"] = cmd.connector_id
                    p["evse"] = evse
                return "ChangeAvailability", p
            case c.UnlockConnector():
                return "UnlockConnector", {"evseId": cmd.evse_id, "connectorId": cmd.connector_id}
            case c.TriggerMessage():
                p = {"requestedMessage": cmd.message}
                if cmd.evse_id is not None:
                    evse = {"id": cmd.evse_id}
                    if cmd.connector_id is not None:
                        evse["connectorId"] = cmd.connector_id
                    p["evse"] = evse
                return "TriggerMessage", p
            case c.GetVariables():
                return "GetVariables", {"getVariableData": [_var(v) for v in cmd.variables]}
            case c.SetVariables():
                return "SetVariables", {
                    "setVariableData": [{**_var(v), "attributeValue": value} for v, value in cmd.values]
                }
            case c.UpdateFirmware():
                p = {
                    "requestId": cmd.request_id,
                    "firmware": {"location": cmd.location, "retrieveDateTime": iso(cmd.retrieve_at)},
                }
                if cmd.retries is not None:
                    p["retries"] = cmd.retries
                if cmd.retry_interval_s is not None:
                    p["retryInterval"] = cmd.retry_interval_s
                return "UpdateFirmware", p
            case c.ReserveNow():
                p = {
                    "id": cmd.reservation_id,
                    "expiryDateTime": iso(cmd.expires_at),
                    "idToken": {"idToken": cmd.id_token, "type": "Central"},
                }
                if cmd.evse_id is not None:
                    p["evseId"] = cmd.evse_id
                return "ReserveNow", p
            case c.CancelReservation():
                return "CancelReservation", {"reservationId": cmd.reservation_id}
            case c.SetChargingLimit():
                purpose = "TxProfile" if cmd.transaction_id else "TxDefaultProfile"
                period: Payload = {"startPeriod": 0, "limit": cmd.limit}
                if cmd.phases is not None:
                    period["numberPhases"] = cmd.phases
                profile: Payload = {
                    "id": cmd.profile_id,
                    "stackLevel": cmd.stack_level,
                    "chargingProfilePurpose": purpose,
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": [
                        {"id": cmd.profile_id, "chargingRateUnit": cmd.unit, "chargingSchedulePeriod": [period]}
                    ],
                }
                if cmd.transaction_id:
                    profile["transactionId"] = cmd.transaction_id
                return "SetChargingProfile", {"evseId": cmd.evse_id, "chargingProfile": profile}
            case c.DataTransfer():
                return "DataTransfer", data_transfer(cmd)
            case c.GetConfiguration() | c.ChangeConfiguration():
                raise Unsupported(f"{type(cmd).__name__} does not exist in OCPP 2.x; use get/set variables")
        raise Unsupported(f"unknown command {cmd!r}")

    def decode_result(self, action: str, payload: Payload) -> c.CommandResult:
        return decode_result(action, payload)
