"""Who may connect, and what a charger's bad input gets: real sockets, running CSMS."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chargegrid.app import Csms, open_csms
from chargegrid.testing import basic_auth, fake_charger
from tests.conftest import PASSWORD, settings_for


async def status_of_refusal(url: str, **kw: object) -> int:
    with pytest.raises(InvalidStatus) as e:
        async with connect(url, open_timeout=5, **kw):  # type: ignore[arg-type]
            pass
    return e.value.response.status_code


async def test_unknown_and_wrong_credentials_refused(csms: Csms, registered: str) -> None:
    base = csms.ocpp_url
    assert await status_of_refusal(f"{base}/NOPE", subprotocols=["ocpp1.6"],
                                   additional_headers={"Authorization": basic_auth("NOPE", "x" * 10)}) == 401
    assert await status_of_refusal(f"{base}/{registered}", subprotocols=["ocpp1.6"],
                                   additional_headers={"Authorization": basic_auth(registered, "wrong")}) == 401
    assert await status_of_refusal(f"{base}/{registered}", subprotocols=["ocpp1.6"]) == 401
    assert await status_of_refusal(f"{base}/{registered}", subprotocols=["ocpp1.6"], additional_headers={
        "Authorization": basic_auth("OTHER", PASSWORD)}) == 401
    assert await status_of_refusal(f"{base}/{registered}", subprotocols=["ocpp1.5", "mqtt"], additional_headers={
        "Authorization": basic_auth(registered, PASSWORD)}) == 400
    assert await status_of_refusal(base.rsplit("/", 1)[0] + "/elsewhere/x", subprotocols=["ocpp1.6"]) == 404
    assert csms.ocpp.refused >= 6
    # the right password still works afterwards, and the client's order of preference is honoured
    async with fake_charger(base, registered, password=PASSWORD, subprotocols=["ocpp2.1", "ocpp1.6"]) as cp:
        assert cp.subprotocol == "ocpp2.1"


async def test_no_subprotocol_served_as_16(csms: Csms, registered: str) -> None:
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD, subprotocols=[]) as cp:
        assert cp.subprotocol is None
        boot = await cp.call("BootNotification", {"chargePointVendor": "Old", "chargePointModel": "M"})
        assert boot["status"] == "Accepted"
    assert csms.ocpp.version_of(registered) is None


async def test_auto_register_only_when_enabled(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with open_csms(settings_for(f"sqlite:///{tmp_path}/a.db", auto_register=True)) as c:
        async with fake_charger(c.ocpp_url, "NEW-1", password="a-new-password") as cp:
            # sent at once, before the registration is stored: held, then handled in order
            await cp.send_raw('[2, "b", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]')
            await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"})
        ch = await c.store.get_charger("NEW-1")
        assert ch is not None and ch.vendor == "V" and ch.connectors[0].status == "Available"
        # the password it first presented is now required
        assert await status_of_refusal(f"{c.ocpp_url}/NEW-1", subprotocols=["ocpp1.6"], additional_headers={
            "Authorization": basic_auth("NEW-1", "another-password")}) == 401


@pytest.mark.parametrize(("proto", "bad_json_code", "bad_type_code"), [
    ("ocpp1.6", "FormationViolation", "FormationViolation"),
    ("ocpp2.0.1", "RpcFrameworkError", "MessageTypeNotSupported"),
])
async def test_malformed_frames_get_callerror_and_connection_lives(
    csms: Csms, registered: str, proto: str, bad_json_code: str, bad_type_code: str
) -> None:
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD, subprotocols=[proto]) as cp:
        await cp.send_raw("{not json")
        err = await cp.expect_raw()
        assert err[0] == 4 and err[1] == "-1" and err[2] == bad_json_code
        await cp.send_raw('[9, "m1", "Heartbeat", {}]')
        err = await cp.expect_raw()
        assert err[:3] == [4, "m1", bad_type_code]
        await cp.send_raw('[2, "m2", "Heartbeat"]')
        err = await cp.expect_raw()
        assert err[0] == 4 and err[1] == "m2"
        await cp.send_raw('[3, "never-asked", {}]')  # an answer to nothing: ignored, not answered
        await cp.send_raw(orjson.dumps([2, "m3", "BootNotification", {"chargePointVendor": 5, "chargePointModel": "M"}])
                          if proto == "ocpp1.6" else
                          orjson.dumps([2, "m3", "BootNotification", {"reason": "PowerUp"}]))
        err = await cp.expect_raw()
        expected = "TypeConstraintViolation" if proto == "ocpp1.6" else (
            "OccurrenceConstraintViolation")
        assert err[:3] == [4, "m3", expected]
        assert "currentTime" in await cp.call("Heartbeat", {})
    assert csms.ocpp.frames_rejected >= 3


async def test_oversized_frame_closes_with_1009_and_others_unharmed(csms: Csms, registered: str) -> None:
    await csms.platform.chargers.register("CP-2", PASSWORD)
    async with fake_charger(csms.ocpp_url, "CP-2", password=PASSWORD) as other:
        async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
            huge = orjson.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "y" * 100_000}]).decode()
            await cp.send_raw(huge)
            with pytest.raises(ConnectionClosed) as e:
                for _ in range(50):
                    await cp.ws.send('[2, "hb", "Heartbeat", {}]')
                    await asyncio.sleep(0.05)
            assert e.value.rcvd is not None and e.value.rcvd.code == 1009
        assert "currentTime" in await other.call("Heartbeat", {})


async def test_flood_is_throttled_without_loss(csms: Csms, registered: str) -> None:
    await csms.platform.chargers.register("CP-2", PASSWORD)
    csms.ocpp.config.rate_per_s = 200.0
    csms.ocpp.config.burst = 50
    async with fake_charger(csms.ocpp_url, "CP-2", password=PASSWORD) as other:
        async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
            n = 400
            for i in range(n):
                await cp.send_raw(f'[2, "f{i}", "Heartbeat", {{}}]')
            t0 = asyncio.get_running_loop().time()
            assert "currentTime" in await other.call("Heartbeat", {})  # unaffected meanwhile
            while len(cp.raw_in) < n:
                await asyncio.sleep(0.02)
                assert asyncio.get_running_loop().time() - t0 < 10
            answered = {m[1] for m in cp.raw_in if m[0] == 3}
            assert answered == {f"f{i}" for i in range(n)}  # every call answered, none dropped
    assert csms.ocpp.throttled >= 1


async def test_replaced_connection(csms: Csms, registered: str) -> None:
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as first:
        async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as second:
            await asyncio.wait_for(first.ws.wait_closed(), 5)
            assert "currentTime" in await second.call("Heartbeat", {})
            assert csms.ocpp.is_connected(registered)


async def test_charger_registered_elsewhere_gets_in_on_retry(csms: Csms) -> None:
    """Registered by the CLI or another node after this node loaded its credentials."""
    from chargegrid.core.credentials import hash_password

    await csms.store.add_charger("LATE-1", hash_password("late-password-1", b"s" * 16), csms.platform.clock())
    url = f"{csms.ocpp_url}/LATE-1"
    auth = {"Authorization": basic_auth("LATE-1", "late-password-1")}
    assert await status_of_refusal(url, subprotocols=["ocpp1.6"], additional_headers=auth) == 401
    for _ in range(50):  # the refusal triggered a look-up; the charger's retry gets in
        await asyncio.sleep(0.05)
        try:
            async with fake_charger(csms.ocpp_url, "LATE-1", password="late-password-1") as cp:
                assert "currentTime" in await cp.call("Heartbeat", {})
                return
        except InvalidStatus:
            continue
    pytest.fail("a charger registered in the store was never admitted")


async def test_credentials_refresh_in_pages_and_last_seen(csms: Csms, registered: str) -> None:
    from chargegrid.core.credentials import hash_password

    for i in range(5):
        await csms.store.add_charger(f"PG-{i}", hash_password(f"password-{i}-xx", b"t" * 16), csms.platform.clock())
    await csms.store.remove_charger(registered)
    chargers = csms.platform.chargers
    await chargers.refresh_credentials(page=2)
    assert chargers.admit("PG-4", "password-4-xx").value == "accept"
    assert chargers.admit("PG-4", "wrong").value == "bad_password"
    assert chargers.admit(registered, PASSWORD).value == "unknown"  # removed elsewhere: dropped
    async with fake_charger(csms.ocpp_url, "PG-1", password="password-1-xx") as cp:
        await cp.call("Heartbeat", {})
        live = chargers.last_seen("PG-1")
        await chargers.flush_seen()
        assert chargers.last_seen("PG-1") == live  # still the live value after a flush
        stored = await csms.store.get_charger("PG-1")
        assert stored is not None and stored.last_seen_at == live
