"""OCPP 1.6 over a real socket against a running CSMS, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chargegrid.app import Csms
from chargegrid.core.model import IdToken, SessionStatus, TokenStatus
from chargegrid.testing import CallError, fake_charger
from tests.conftest import PASSWORD

BOOT = {"chargePointVendor": "Acme", "chargePointModel": "Volt-22", "chargePointSerialNumber": "SN-1",
        "firmwareVersion": "1.2.3"}


def ts(minutes: float = 0) -> str:
    at = datetime(2026, 11, 25, 10, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return at.isoformat().replace("+00:00", "Z")


def mv(register_wh: float, minutes: float, power_w: float = 7000) -> dict[str, object]:
    return {
        "timestamp": ts(minutes),
        "sampledValue": [
            {"value": f"{register_wh / 1000:.3f}", "unit": "kWh", "measurand": "Energy.Active.Import.Register",
             "context": "Sample.Periodic"},
            {"value": str(power_w), "unit": "W", "measurand": "Power.Active.Import"},
            {"value": "55", "unit": "Percent", "measurand": "SoC", "location": "EV"},
        ],
    }


async def test_boot_heartbeat_status(csms: Csms, registered: str) -> None:
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
        assert cp.subprotocol == "ocpp1.6"
        boot = await cp.call("BootNotification", BOOT)
        assert boot["status"] == "Accepted" and boot["interval"] > 0
        hb = await cp.call("Heartbeat", {})
        assert hb["currentTime"].endswith("Z")
        assert await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                    "status": "Available", "timestamp": ts()}) == {}
        # an older replayed status must not rewind the newer one
        await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging",
                                             "timestamp": ts(5)})
        await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available",
                                             "timestamp": ts(1)})
    ch = await csms.store.get_charger(registered)
    assert ch is not None and ch.vendor == "Acme" and ch.model == "Volt-22" and ch.ocpp_version == "ocpp1.6"
    (conn,) = [c for c in ch.connectors if c.connector_id == 1]
    assert conn.status == "Charging" and conn.state.value == "Occupied"


async def test_transaction_with_replays(csms: Csms, registered: str) -> None:
    await csms.platform.admin.upsert_token(IdToken(token="TAG1"))
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
        await cp.call("BootNotification", BOOT)
        auth = await cp.call("Authorize", {"idTag": "TAG1"})
        assert auth["idTagInfo"]["status"] == "Accepted"
        unknown = await cp.call("Authorize", {"idTag": "NOPE"})
        assert unknown["idTagInfo"]["status"] == "Invalid"
        start = {"connectorId": 1, "idTag": "TAG1", "meterStart": 1000, "timestamp": ts()}
        r1 = await cp.call("StartTransaction", start)
        tx = r1["transactionId"]
        assert isinstance(tx, int) and r1["idTagInfo"]["status"] == "Accepted"
        for i in range(1, 4):
            payload = {"connectorId": 1, "transactionId": tx, "meterValue": [mv(1000 + 500 * i, i)]}
            assert await cp.call("MeterValues", payload) == {}
    # the charger reconnects and replays everything it had not seen acknowledged
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
        r2 = await cp.call("StartTransaction", start)
        assert r2["transactionId"] == tx
        for i in range(1, 4):
            await cp.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [mv(1000 + 500 * i, i)]})
        stop = {"transactionId": tx, "meterStop": 3200, "timestamp": ts(10), "reason": "EVDisconnected",
                "idTag": "TAG1"}
        assert (await cp.call("StopTransaction", stop))["idTagInfo"]["status"] == "Accepted"
        await cp.call("StopTransaction", stop)
    sessions = await csms.store.list_sessions(charger_id=registered)
    assert len(sessions) == 1
    s = sessions[0]
    assert s.status is SessionStatus.COMPLETED and s.energy_wh == 2200 and s.stop_reason == "EVDisconnected"
    samples = await csms.store.list_meter_samples(registered, str(tx))
    assert len(samples) == 3
    assert [x.values[0].value for x in samples] == [1500.0, 2000.0, 2500.0]


async def test_expired_and_blocked_tokens(csms: Csms, registered: str) -> None:
    past = datetime(2020, 1, 1, tzinfo=UTC)
    await csms.platform.admin.upsert_token(IdToken(token="OLD", expires_at=past))
    await csms.platform.admin.upsert_token(IdToken(token="BAD", status=TokenStatus.BLOCKED))
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
        assert (await cp.call("Authorize", {"idTag": "OLD"}))["idTagInfo"]["status"] == "Expired"
        assert (await cp.call("Authorize", {"idTag": "BAD"}))["idTagInfo"]["status"] == "Blocked"


async def test_notifications_and_unknown_actions(csms: Csms, registered: str) -> None:
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
        assert await cp.call("FirmwareStatusNotification", {"status": "Downloading"}) == {}
        assert await cp.call("DiagnosticsStatusNotification", {"status": "Uploaded"}) == {}
        assert (await cp.call("DataTransfer", {"vendorId": "acme"}))["status"] == "UnknownVendorId"
        with pytest.raises(CallError) as e:
            await cp.call("NoSuchAction", {})
        assert e.value.code == "NotImplemented"
        with pytest.raises(CallError) as e:
            await cp.call("Reset", {"type": "Hard"})  # a CSMS-to-charger action sent the wrong way
        assert e.value.code == "NotSupported"
        # the connection lives on
        assert "currentTime" in await cp.call("Heartbeat", {})
    await asyncio.sleep(0)
