"""OCPP 2.0.1 and 2.1 over a real socket, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from chargegrid.app import Csms
from chargegrid.core.model import IdToken, SessionStatus
from chargegrid.testing import CallError, fake_charger
from tests.conftest import PASSWORD

BOOT = {"reason": "PowerUp", "chargingStation": {"model": "Volt-2X", "vendorName": "Acme", "serialNumber": "S2",
                                                 "firmwareVersion": "2.0"}}


def ts(minutes: float = 0) -> str:
    return (datetime(2026, 11, 25, 10, tzinfo=UTC) + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def meter(register_wh: float, minutes: float, power_w: float = 11000) -> list[dict[str, object]]:
    return [{"timestamp": ts(minutes), "sampledValue": [
        {"value": register_wh / 1000, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "kWh"}},
        {"value": power_w, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W"}},
        {"value": 42.5, "measurand": "SoC", "location": "EV", "unitOfMeasure": {"unit": "Percent"}},
    ]}]


def event(kind: str, seq: int, minutes: float, register_wh: float, **extra: object) -> dict[str, object]:
    p: dict[str, object] = {
        "eventType": kind, "timestamp": ts(minutes), "seqNo": seq,
        "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "EVDeparted"}[kind],
        "transactionInfo": {"transactionId": "tx-abc-1"}, "meterValue": meter(register_wh, minutes),
    }
    p.update(extra)
    return p


@pytest.mark.parametrize("proto", ["ocpp2.0.1", "ocpp2.1"])
async def test_transaction_events_and_replays(csms: Csms, registered: str, proto: str) -> None:
    await csms.platform.admin.upsert_token(IdToken(token="APP-7", type="Central"))
    started = event("Started", 0, 0, 5000, idToken={"idToken": "APP-7", "type": "Central"},
                    evse={"id": 1, "connectorId": 1})
    updates = [event("Updated", i, i, 5000 + 250 * i) for i in range(1, 4)]
    ended = event("Ended", 4, 10, 7000)
    ended["transactionInfo"] = {"transactionId": "tx-abc-1", "stoppedReason": "EVDisconnected"}
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD, subprotocols=[proto]) as cp:
        assert cp.subprotocol == proto
        boot = await cp.call("BootNotification", BOOT)
        assert boot["status"] == "Accepted"
        assert (await cp.call("Authorize", {"idToken": {"idToken": "APP-7", "type": "Central"}}))[
            "idTokenInfo"]["status"] == "Accepted"
        await cp.call("StatusNotification", {"timestamp": ts(), "connectorStatus": "Occupied", "evseId": 1,
                                             "connectorId": 1})
        r = await cp.call("TransactionEvent", started)
        assert r["idTokenInfo"]["status"] == "Accepted"
        for u in updates[:2]:
            assert await cp.call("TransactionEvent", u) == {}
        live = csms.platform.transactions.live(registered, "tx-abc-1")
        assert live is not None and live.energy_wh == 500 and live.power_w == 11000 and live.soc_percent == 42.5
    # offline replay: everything again, plus what was never sent
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD, subprotocols=[proto]) as cp:
        for msg in [started, *updates, ended, ended]:
            await cp.call("TransactionEvent", {**msg, "offline": True})
    sessions = await csms.store.list_sessions(charger_id=registered)
    assert len(sessions) == 1
    s = sessions[0]
    assert s.status is SessionStatus.COMPLETED
    assert s.energy_wh == 2000 and s.stop_reason == "EVDisconnected" and s.id_token == "APP-7"
    assert s.evse_id == 1 and s.ocpp_version.value == proto
    samples = await csms.store.list_meter_samples(registered, "tx-abc-1")
    assert len(samples) == 5
    ch = await csms.store.get_charger(registered)
    assert ch is not None and ch.vendor == "Acme" and ch.connectors[0].status == "Occupied"


async def test_v2_notifications_and_meter_values(csms: Csms, registered: str) -> None:
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD, subprotocols=["ocpp2.0.1"]) as cp:
        assert await cp.call("MeterValues", {"evseId": 1, "meterValue": meter(100, 0)}) == {}
        assert await cp.call("NotifyReport", {"requestId": 1, "generatedAt": ts(), "seqNo": 0}) == {}
        assert await cp.call("NotifyEvent", {"generatedAt": ts(), "seqNo": 0, "eventData": [{
            "eventId": 1, "timestamp": ts(), "trigger": "Alerting", "actualValue": "x", "eventNotificationType":
            "HardWiredNotification", "component": {"name": "EVSE"}, "variable": {"name": "Problem"}}]}) == {}
        assert await cp.call("SecurityEventNotification", {"type": "FirmwareUpdated", "timestamp": ts()}) == {}
        assert await cp.call("FirmwareStatusNotification", {"status": "Installed"}) == {}
        assert await cp.call("LogStatusNotification", {"status": "Uploaded"}) == {}
        with pytest.raises(CallError) as e:
            await cp.call("StartTransaction", {})  # a 1.6 action on a 2.0.1 connection
        assert e.value.code == "NotImplemented"
        with pytest.raises(CallError) as e:
            await cp.call("NotifyEVChargingNeeds", {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "DC"}})
        assert e.value.code == "NotSupported"
        with pytest.raises(CallError) as e:
            await cp.call("StatusNotification", {"timestamp": ts(), "connectorStatus": "Dancing", "evseId": 1,
                                                  "connectorId": 1})
        assert e.value.code == "PropertyConstraintViolation"
        with pytest.raises(CallError) as e:
            await cp.call("Heartbeat", {"extra": 1})
        assert e.value.code == "FormatViolation"


async def test_pipelined_and_duplicated_events_merge_once(csms: Csms, registered: str) -> None:
    """A charger that does not wait for answers (it happens) and repeats itself: one session,
    every reading counted once, the final figures right."""
    started = event("Started", 0, 0, 1000, idToken={"idToken": "X", "type": "Central"},
                    evse={"id": 2, "connectorId": 1})
    updates = [event("Updated", i, i, 1000 + 100 * i) for i in range(1, 6)]
    ended = event("Ended", 6, 10, 1600)
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD, subprotocols=["ocpp2.0.1"]) as cp:
        await cp.call("TransactionEvent", started)
        msgs = [*updates, *updates[:3], ended, ended]
        answers = await asyncio.gather(*(cp.call("TransactionEvent", m, message_id=f"p{i}")
                                         for i, m in enumerate(msgs)))
        assert all(a == {} for a in answers)
    (s,) = await csms.store.list_sessions(charger_id=registered)
    assert s.status is SessionStatus.COMPLETED and s.energy_wh == 600 and s.evse_id == 2
    assert len(await csms.store.list_meter_samples(registered, "tx-abc-1")) == 7


async def test_failed_event_is_applied_on_retry(csms: Csms, registered: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An event recorded as seen whose processing then fails must count when the charger retries."""
    real = csms.store.insert_session
    calls = 0

    async def flaky(session):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database went away")
        return await real(session)

    monkeypatch.setattr(csms.store, "insert_session", flaky)
    started = event("Started", 0, 0, 1000, evse={"id": 1, "connectorId": 1})
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD, subprotocols=["ocpp2.0.1"]) as cp:
        with pytest.raises(CallError) as e:
            await cp.call("TransactionEvent", started)
        assert e.value.code == "InternalError"
        assert await cp.call("TransactionEvent", started) == {}
    (s,) = await csms.store.list_sessions(charger_id=registered)
    assert s.transaction_id == "tx-abc-1" and s.status is SessionStatus.ACTIVE
