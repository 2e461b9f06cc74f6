"""OCPP 1.6-J: charger messages to service calls, commands to 1.6 frames.

1.6 has one connector per EVSE in the model, so ``evse_id == connector_id`` everywhere; the
CSMS assigns integer transaction ids (the session's row id). Payloads reach these handlers
already validated against the official schema, so fields the schema requires are read with
``[]`` and optional ones with ``.get``.
"""

from __future__ import annotations

from typing import Any

from chargegrid.core import commands as c
from chargegrid.core.meter import parse_timestamp, samples_v16
from chargegrid.core.model import BootInfo, MeterSample, TokenStatus
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


def _id_tag_info(status: TokenStatus, expires: Any = None) -> Payload:
    info: Payload = {"status": status.value}
    if expires is not None:
        info["expiryDate"] = iso(expires)
    return info


class V16:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.handlers: dict[str, Handler] = {
            "BootNotification": self.boot,
            "Heartbeat": self.heartbeat,
            "StatusNotification": self.status,
            "Authorize": self.authorize,
            "StartTransaction": self.start_transaction,
            "StopTransaction": self.stop_transaction,
            "MeterValues": self.meter_values,
            "DataTransfer": self.data_transfer,
            "DiagnosticsStatusNotification": self.diagnostics_status,
            "FirmwareStatusNotification": self.firmware_status,
        }

    # -- inbound ---------------------------------------------------------------------------
    async def boot(self, ctx: Context, p: Payload) -> Payload:
        info = BootInfo(
            vendor=p["chargePointVendor"],
            model=p["chargePointModel"],
            serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
            firmware_version=p.get("firmwareVersion"),
        )
        decision = await self.s.chargers.boot(ctx.charger_id, info, ctx.version)
        return {"status": decision.status, "currentTime": iso(self.s.chargers.clock()), "interval": decision.interval_s}

    def heartbeat(self, ctx: Context, p: Payload) -> Reply:
        return {"currentTime": iso(self.s.chargers.clock())}

    def status(self, ctx: Context, p: Payload) -> Reply:
        ts = p.get("timestamp")
        connector = p["connectorId"]
        return done(
            self.s.chargers.status(
                ctx.charger_id,
                evse_id=connector,
                connector_id=connector,
                raw_status=p["status"],
                error_code=p["errorCode"],
                at=parse_timestamp(ts) if ts else self.s.chargers.clock(),
            )
        )

    async def authorize(self, ctx: Context, p: Payload) -> Payload:
        status, expires = await self.s.transactions.authorize(p["idTag"])
        return {"idTagInfo": _id_tag_info(status, expires)}

    async def start_transaction(self, ctx: Context, p: Payload) -> Payload:
        session, status = await self.s.transactions.start_v16(
            ctx.charger_id,
            connector_id=p["connectorId"],
            id_tag=p["idTag"],
            meter_start_wh=p["meterStart"],
            at=parse_timestamp(p["timestamp"]),
            reservation_id=p.get("reservationId"),
        )
        return {"transactionId": int(session.transaction_id), "idTagInfo": _id_tag_info(status)}

    async def stop_transaction(self, ctx: Context, p: Payload) -> Payload:
        tx = str(p["transactionId"])
        live = self.s.transactions.live(ctx.charger_id, tx)
        connector = live.connector_id if live else 0
        samples = self._samples(ctx, connector, tx, p.get("transactionData") or ())
        await self.s.transactions.stop_v16(
            ctx.charger_id,
            transaction_id=tx,
            meter_stop_wh=p["meterStop"],
            at=parse_timestamp(p["timestamp"]),
            reason=p.get("reason"),
            samples=samples,
        )
        if "idTag" in p:
            status, _ = await self.s.transactions.authorize(p["idTag"])
            return {"idTagInfo": _id_tag_info(status)}
        return {}

    def _samples(self, ctx: Context, connector: int, tx: str | None, meter_values: Any) -> tuple[MeterSample, ...]:
        return samples_v16(
            charger_id=ctx.charger_id, evse_id=connector, connector_id=connector, transaction_id=tx,
            meter_values=meter_values,
        )

    def meter_values(self, ctx: Context, p: Payload) -> Reply:
        tx = p.get("transactionId")
        samples = self._samples(ctx, p["connectorId"], None if tx is None else str(tx), p["meterValue"])
        return self.s.transactions.meter_values(samples)

    def data_transfer(self, ctx: Context, p: Payload) -> Reply:
        self.s.chargers.notify(ctx.charger_id, "data_transfer", {"vendor_id": p["vendorId"],
                                                                 "message_id": p.get("messageId")})
        return {"status": "UnknownVendorId"}

    def diagnostics_status(self, ctx: Context, p: Payload) -> Reply:
        self.s.chargers.notify(ctx.charger_id, "diagnostics_status", {"status": p["status"]})
        return {}

    def firmware_status(self, ctx: Context, p: Payload) -> Reply:
        self.s.chargers.notify(ctx.charger_id, "firmware_status", {"status": p["status"]})
        return {}

    # -- outbound --------------------------------------------------------------------------
    def encode_command(self, cmd: c.Command) -> tuple[str, Payload]:
        match cmd:
            case c.RemoteStart():
                p: Payload = {"idTag": cmd.id_token}
                connector = cmd.connector_id if cmd.connector_id is not None else cmd.evse_id
                if connector is not None:
                    p["connectorId"] = connector
                return "RemoteStartTransaction", p
            case c.RemoteStop():
                try:
                    return "RemoteStopTransaction", {"transactionId": int(cmd.transaction_id)}
                except ValueError:
                    raise Unsupported(f"1.6 transaction ids are integers, not {cmd.transaction_id!r}") from None
            case c.Reset():
                return "Reset", {"type": "Hard" if cmd.hard else "Soft"}
            case c.ChangeAvailability():
                connector = cmd.connector_id if cmd.connector_id is not None else cmd.evse_id
                return "ChangeAvailability", {
                    "connectorId": connector,
                    "type": "Operative" if cmd.operative else "Inoperative",
                }
            case c.UnlockConnector():
                return "UnlockConnector", {"connectorId": cmd.evse_id}
            case c.TriggerMessage():
                p = {"requestedMessage": cmd.message}
                connector = cmd.connector_id if cmd.connector_id is not None else cmd.evse_id
                if connector is not None:
                    p["connectorId"] = connector
                return "TriggerMessage", p
            case c.GetConfiguration():
                return "GetConfiguration", ({"key": list(cmd.keys)} if cmd.keys else {})
            case c.ChangeConfiguration():
                return "ChangeConfiguration", {"key": cmd.key, "value": cmd.value}
            case c.UpdateFirmware():
                p = {"location": cmd.location, "retrieveDate": iso(cmd.retrieve_at)}
                if cmd.retries is not None:
                    p["retries"] = cmd.retries
                if cmd.retry_interval_s is not None:
                    p["retryInterval"] = cmd.retry_interval_s
                return "UpdateFirmware", p
            case c.ReserveNow():
                return "ReserveNow", {
                    "connectorId": cmd.connector_id or cmd.evse_id or 0,
                    "expiryDate": iso(cmd.expires_at),
                    "idTag": cmd.id_token,
                    "reservationId": cmd.reservation_id,
                }
            case c.CancelReservation():
                return "CancelReservation", {"reservationId": cmd.reservation_id}
            case c.SetChargingLimit():
                purpose = "TxProfile" if cmd.transaction_id else "TxDefaultProfile"
                profile: Payload = {
                    "chargingProfileId": cmd.profile_id,
                    "stackLevel": cmd.stack_level,
                    "chargingProfilePurpose": purpose,
                    "chargingProfileKind": "Relative",
                    "chargingSchedule": {
                        "chargingRateUnit": cmd.unit,
                        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": cmd.limit}],
                    },
                }
                if cmd.phases is not None:
                    profile["chargingSchedule"]["chargingSchedulePeriod"][0]["numberPhases"] = cmd.phases
                if cmd.transaction_id:
                    profile["transactionId"] = int(cmd.transaction_id)
                return "SetChargingProfile", {"connectorId": cmd.evse_id, "csChargingProfiles": profile}
            case c.DataTransfer():
                return "DataTransfer", data_transfer(cmd)
            case c.GetVariables() | c.SetVariables():
                raise Unsupported(f"{type(cmd).__name__} does not exist in OCPP 1.6")
        raise Unsupported(f"unknown command {cmd!r}")

    def decode_result(self, action: str, payload: Payload) -> c.CommandResult:
        return decode_result(action, payload)
