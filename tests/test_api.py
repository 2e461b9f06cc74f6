"""The HTTP API against a running CSMS with fake chargers on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Any

import httpx
import orjson
import pytest
from websockets.exceptions import InvalidStatus

from chargegrid.app import Csms
from chargegrid.core.model import Role
from chargegrid.testing import fake_charger
from tests.conftest import PASSWORD


def client(csms: Csms, key: str | None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(base_url=csms.http_url, headers=headers, timeout=10)


async def test_openapi_and_health(csms: Csms) -> None:
    async with client(csms, None) as http:
        doc = (await http.get("/openapi.json")).json()
        paths = doc["paths"]
        assert "/api/v1/chargers/{charger_id}/start" in paths
        assert "/api/v1/events" in paths and "/api/v1/sessions/{session_id}" in paths
        assert (await http.get("/healthz")).json() == {"status": "ok"}
        assert (await http.get("/readyz")).status_code == 200
        assert "chargegrid_connected_chargers" in (await http.get("/metrics")).text


async def test_keys_and_roles(csms: Csms, admin_key: str, registered: str) -> None:
    viewer = await csms.platform.admin.create_api_key(Role.VIEWER)
    async with client(csms, None) as http:
        r = await http.get("/api/v1/chargers")
        assert r.status_code == 401 and "API key" in r.json()["detail"]
    async with client(csms, "cgk_nonsense") as http:
        assert (await http.get("/api/v1/chargers")).status_code == 401
    async with client(csms, viewer) as http:
        assert (await http.get("/api/v1/chargers")).status_code == 200
        r = await http.post(f"/api/v1/chargers/{registered}/reset", json={"type": "soft"})
        assert r.status_code == 403 and "viewer" in r.json()["detail"]
        assert (await http.put("/api/v1/tokens/T1", json={})).status_code == 403
    async with client(csms, admin_key) as http:
        r = await http.post("/api/v1/apikeys", json={"role": "operator", "name": "ops"})
        assert r.status_code == 201
        operator = r.json()["key"]
        assert (await http.post("/api/v1/apikeys", json={"role": "god"})).status_code == 422
    async with client(csms, operator) as http:
        r = await http.post(f"/api/v1/chargers/{registered}/reset", json={"type": "soft"})
        assert r.status_code == 409 and "not connected" in r.json()["detail"]


async def test_chargers_tokens_crud(csms: Csms, admin_key: str) -> None:
    async with client(csms, admin_key) as http:
        r = await http.post("/api/v1/chargers", json={"id": "API-1", "password": "long-enough-pw"})
        assert r.status_code == 201 and r.json()["id"] == "API-1" and r.json()["connected"] is False
        assert (await http.post("/api/v1/chargers", json={"id": "a/b", "password": "long-enough-pw"})).status_code \
            == 422
        assert (await http.post("/api/v1/chargers", json={"id": "X", "password": "short"})).status_code == 422
        assert (await http.post("/api/v1/chargers", json={"id": "X", "pasword": "typo-typo-typo"})).status_code \
            == 422
        assert [c["id"] for c in (await http.get("/api/v1/chargers")).json()] == ["API-1"]
        assert (await http.get("/api/v1/chargers/NOPE")).status_code == 404
        r = await http.put("/api/v1/tokens/RFID-1", json={"status": "Blocked", "expires_at": "2030-01-01T00:00:00Z"})
        assert r.status_code == 200 and r.json()["status"] == "Blocked"
        assert (await http.put("/api/v1/tokens/RFID-2", json={"status": "Maybe"})).status_code == 422
        assert (await http.put("/api/v1/tokens/RFID-2", json={"expires_at": "2030-01-01T00:00:00"})).status_code \
            == 422
        assert [t["token"] for t in (await http.get("/api/v1/tokens")).json()] == ["RFID-1"]
        assert (await http.delete("/api/v1/tokens/RFID-1")).status_code == 204
        assert (await http.delete("/api/v1/tokens/RFID-1")).status_code == 404
        assert (await http.delete("/api/v1/chargers/API-1")).status_code == 204
    with pytest.raises(InvalidStatus) as refused:  # a removed charger can no longer connect
        async with fake_charger(csms.ocpp_url, "API-1", password="long-enough-pw"):
            pass
    assert refused.value.response.status_code == 401


@pytest.mark.parametrize("proto", ["ocpp1.6", "ocpp2.0.1"])
async def test_commands_roundtrip(csms: Csms, admin_key: str, registered: str, proto: str) -> None:
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD, subprotocols=[proto]) as cp:
        def answer(action: str, payload: dict[str, Any]) -> dict[str, Any]:
            if action == "GetConfiguration":
                return {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]}
            if action == "GetVariables":
                return {"getVariableResult": [{"attributeStatus": "Accepted", "component": {"name": "OCPPCommCtrlr"},
                                               "variable": {"name": "HeartbeatInterval"}, "attributeValue": "300"}]}
            if action == "UnlockConnector":
                return {"status": "Unlocked"}
            if action == "UpdateFirmware":
                return {} if proto == "ocpp1.6" else {"status": "Accepted"}
            if action == "SetVariables":
                return {"setVariableResult": [{"attributeStatus": "Accepted", "component": {"name": "C"},
                                               "variable": {"name": "V"}}]}
            return {"status": "Accepted"}

        cp.on_call = answer
        base = f"/api/v1/chargers/{registered}"
        async with client(csms, admin_key) as http:
            r = await http.post(f"{base}/start", json={"id_token": "TAG1", "evse_id": 1})
            assert r.status_code == 200 and r.json()["status"] == "Accepted"
            action, payload = cp.received[-1]
            if proto == "ocpp1.6":
                assert action == "RemoteStartTransaction" and payload == {"idTag": "TAG1", "connectorId": 1}
            else:
                assert action == "RequestStartTransaction" and payload["idToken"]["idToken"] == "TAG1"
            r = await http.post(f"{base}/stop", json={"transaction_id": "17"})
            assert r.json()["action"] in ("RemoteStopTransaction", "RequestStopTransaction")
            assert (await http.post(f"{base}/reset", json={"type": "hard"})).json()["status"] == "Accepted"
            assert cp.received[-1][1]["type"] == ("Hard" if proto == "ocpp1.6" else "Immediate")
            r = await http.post(f"{base}/availability", json={"operative": False, "evse_id": 1})
            assert r.status_code == 200
            assert (await http.post(f"{base}/unlock", json={"evse_id": 1})).json()["status"] == "Unlocked"
            r = await http.post(f"{base}/trigger", json={"message": "StatusNotification", "evse_id": 1})
            assert r.status_code == 200
            r = await http.post(f"{base}/trigger", json={"message": "Nonsense"})
            assert r.status_code == 422  # the schema refuses it before it reaches the charger
            r = await http.post(f"{base}/firmware", json={"location": "https://fw.example/1.bin",
                                                           "retrieve_at": "2026-12-01T00:00:00Z"})
            assert r.status_code == 200
            if proto == "ocpp1.6":
                r = await http.post(f"{base}/configuration/get", json={"keys": ["HeartbeatInterval"]})
                assert r.json()["response"]["configurationKey"][0]["value"] == "300"
                r = await http.post(f"{base}/configuration/change", json={"key": "HeartbeatInterval", "value": "60"})
                assert r.json()["status"] == "Accepted"
                r = await http.post(f"{base}/variables/get", json={"variables": [{"component": "C", "variable": "V"}]})
                assert r.status_code == 422 and "2.x" in r.json()["detail"]
            else:
                r = await http.post(f"{base}/variables/get", json={"variables": [
                    {"component": "OCPPCommCtrlr", "variable": "HeartbeatInterval"}]})
                assert r.json()["response"]["getVariableResult"][0]["attributeValue"] == "300"
                r = await http.post(f"{base}/variables/set", json={"values": [
                    {"component": "C", "variable": "V", "value": "1"}]})
                assert r.status_code == 200
                r = await http.post(f"{base}/configuration/get", json={})
                assert r.status_code == 422
            assert (await http.post(f"{base}/reset", json={"type": "sideways"})).status_code == 422
            # the message log shows the exchange, newest first
            log = (await http.get(f"{base}/messages", params={"limit": 4})).json()
            assert len(log) == 4 and log[0]["at"] >= log[-1]["at"]
            assert {e["direction"] for e in (await http.get(f"{base}/messages")).json()} == {"in", "out"}


async def test_command_timeout_and_charger_error(csms: Csms, admin_key: str, registered: str) -> None:
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
        async def never(action: str, payload: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(30)
            return {}

        cp.on_call = never
        async with client(csms, admin_key) as http:
            r = await http.post(f"/api/v1/chargers/{registered}/reset", json={}, params={"timeout": 0.5})
            assert r.status_code == 504 and "did not answer" in r.json()["detail"]


async def test_sessions_and_sse(csms: Csms, admin_key: str, registered: str) -> None:
    events: list[tuple[str, dict[str, Any]]] = []

    async def listen() -> None:
        async with client(csms, admin_key) as http, http.stream("GET", "/api/v1/events") as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            topic = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    topic = line[7:]
                elif line.startswith("data: ") and topic:
                    events.append((topic, orjson.loads(line[6:])))

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.3)
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await cp.call("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"})
        while not any(t == "connector.status" for t, _ in events):
            await asyncio.sleep(0.01)
            assert loop.time() - sent < 1.0, "status change not seen by the SSE client within 1 s"
        r = await cp.call("StartTransaction", {"connectorId": 1, "idTag": "X", "meterStart": 0,
                                                "timestamp": "2026-11-25T10:00:00Z"})
        tx = r["transactionId"]
        await cp.call("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            {"timestamp": "2026-11-25T10:01:00Z", "sampledValue": [{"value": "250"}]}]})
        async with client(csms, admin_key) as http:
            active = (await http.get("/api/v1/sessions", params={"active": True})).json()
            assert len(active) == 1 and active[0]["energy_wh"] == 250
            sid = active[0]["id"]
            one = (await http.get(f"/api/v1/sessions/{sid}")).json()
            assert one["meter_values"][0]["values"][0]["value"] == 250.0
            assert (await http.get("/api/v1/sessions/999999")).status_code == 404
            assert (await http.get("/api/v1/sessions", params={"limit": 0})).status_code == 422
            r = await http.post(f"/api/v1/chargers/{registered}/stop", json={"session_id": sid})
            assert r.status_code == 200 and cp.received[-1] == ("RemoteStopTransaction", {"transactionId": tx})
    await asyncio.sleep(0.2)
    assert not listener.done(), "the event stream ended early"
    listener.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await listener
    topics = [t for t, _ in events]
    assert "session.started" in topics and "session.updated" in topics and "charger.connected" in topics


async def test_cli_commands_go_through_the_api(csms: Csms, registered: str) -> None:
    operator = await csms.platform.admin.create_api_key(Role.OPERATOR)
    env = {**os.environ, "CHARGEGRID_API_URL": csms.http_url, "CHARGEGRID_API_KEY": operator}

    async def cli(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chargegrid", "cmd", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await cli("reset", registered)
    assert code == 1 and "not connected" in err
    async with fake_charger(csms.ocpp_url, registered, password=PASSWORD) as cp:
        code, out, err = await cli("start", registered, "--id-token", "TAG9", "--connector", "2")
        assert code == 0, err
        assert orjson.loads(out)["status"] == "Accepted"
        assert cp.received[-1] == ("RemoteStartTransaction", {"idTag": "TAG9", "connectorId": 2})
        code, out, err = await cli("get-variables", registered, "Bad")
        assert code == 2 and "Component.Variable" in err
