"""The charger and driver simulator: battery model and framing (pure, property-tested), then whole
runs against a fake CSMS written here, so the simulator is checked from the outside as a CSMS sees it:
auth header and subprotocol, boot first, sessions on 1.6 and 2.x, drops with replay, CSMS commands.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import math
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from chargegrid.sim import SimConfig, run_simulation
from chargegrid.sim.battery import Battery, acceptance_power_w, charge
from chargegrid.sim.framing import (
    Call,
    CallError,
    CallResult,
    Malformed,
    decode,
    encode_call,
    encode_error,
    encode_result,
)

PASSWORD = "simulated-charger-secret"
VERSIONS = ("ocpp1.6", "ocpp2.0.1", "ocpp2.1")
ENERGY = "Energy.Active.Import.Register"

batteries = st.builds(
    Battery,
    capacity_wh=st.integers(min_value=1_000, max_value=200_000),
    soc=st.floats(min_value=0.0, max_value=1.0),
    max_power_w=st.integers(min_value=0, max_value=350_000),
)
offers = st.integers(min_value=-1000, max_value=400_000)
durations = st.floats(min_value=-10.0, max_value=6 * 3600.0)


@given(batteries, offers, durations)
def test_charge_conserves_energy_and_never_overfills(battery: Battery, offered: int, seconds: float) -> None:
    after, delivered = charge(battery, offered, seconds)
    assert delivered >= 0
    assert after.capacity_wh == battery.capacity_wh and after.max_power_w == battery.max_power_w
    assert battery.soc <= after.soc <= 1.0
    assert delivered <= battery.room_wh
    assert math.isclose(
        after.soc * battery.capacity_wh,
        battery.soc * battery.capacity_wh + delivered,
        abs_tol=1e-6 * battery.capacity_wh,
    )


@given(batteries, offers, durations)
def test_average_power_never_above_acceptance_or_offer(battery: Battery, offered: int, seconds: float) -> None:
    _, delivered = charge(battery, offered, seconds)
    if seconds <= 0 or offered <= 0:
        assert delivered == 0
        return
    limit = min(offered, acceptance_power_w(battery, battery.soc))
    assert delivered <= limit * seconds / 3600.0 + 1e-6


@given(batteries, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_acceptance_tapers_monotonically(battery: Battery, a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert acceptance_power_w(battery, low) >= acceptance_power_w(battery, high)
    assert int(battery.max_power_w * 0.1) - 1 <= acceptance_power_w(battery, high) <= battery.max_power_w


def test_curve_shape() -> None:
    battery = Battery(capacity_wh=60_000, soc=0.5, max_power_w=100_000)
    assert acceptance_power_w(battery, 0.79) == 100_000
    assert acceptance_power_w(battery, 0.9) == 55_000
    assert acceptance_power_w(battery, 1.0) == 10_000


def test_a_full_charge_follows_the_taper() -> None:
    battery = Battery(capacity_wh=50_000, soc=0.2, max_power_w=50_000)
    after, delivered = charge(battery, 22_000, 3600)  # 22 kWh at full power: 20 % -> 64 %
    assert delivered == 22_000 and math.isclose(after.soc, 0.64)
    full, rest = charge(after, 22_000, 10 * 3600)
    assert full.soc == 1.0 and rest == 18_000
    assert charge(full, 22_000, 3600) == (full, 0)


def test_charge_is_deterministic() -> None:
    battery = Battery(capacity_wh=77_000, soc=0.75, max_power_w=11_000)
    assert charge(battery, 11_000, 5400) == charge(battery, 11_000, 5400)


def test_framing_round_trip_and_garbage() -> None:
    assert decode(encode_call("1", "Heartbeat", {})) == Call(message_id="1", action="Heartbeat", payload={})
    assert decode(encode_result("2", {"a": 1})) == CallResult(message_id="2", payload={"a": 1})
    error = decode(encode_error("3", "NotImplemented", "nope"))
    assert isinstance(error, CallError) and error.code == "NotImplemented" and error.details == {}
    assert isinstance(decode("not json"), Malformed)
    assert isinstance(decode('[5, "1", {}]'), Malformed)
    assert decode('[2, "9", 3, {}]') == Malformed(message_id="9", reason="bad frame shape")


# ---------------------------------------------------------------------------------------------
# Integration: a tiny fake CSMS, written here so the simulator is tested from the outside.


class FakeCsms:
    """Accepts Basic-auth chargers, answers every CALL, assigns 1.6 transaction ids (deduplicated
    on replay like a real CSMS), can drop a connection without answering and refuse reconnects."""

    def __init__(self, password: str = PASSWORD) -> None:
        self.password = password
        self.calls: list[tuple[str, str, dict[str, Any]]] = []  # (charger, action, payload)
        self.times: list[datetime] = []  # when each of those arrived
        self.auth: dict[str, str | None] = {}
        self.subprotocols: dict[str, str | None] = {}
        self.tx_ids: dict[tuple[str, int, int, str], int] = {}
        self.connections: dict[str, ServerConnection] = {}
        self.refuse_until: dict[str, float] = {}
        self.drop_when: Callable[[str, str, dict[str, Any]], bool] | None = None
        self.pending: dict[str, asyncio.Future[list[Any]]] = {}
        self.changed = asyncio.Event()
        self.port = 0

    async def until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ocpp"

    def of(self, action: str, charger: str | None = None) -> list[dict[str, Any]]:
        return [p for c, a, p in self.calls if a == action and (charger is None or c == charger)]

    async def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        charger = request.path.rsplit("/", 1)[-1]
        header = request.headers.get("Authorization")
        self.auth[charger] = header
        expected = "Basic " + base64.b64encode(f"{charger}:{self.password}".encode()).decode()
        if header != expected:
            return connection.respond(HTTPStatus.UNAUTHORIZED, "unauthorized\n")
        if asyncio.get_running_loop().time() < self.refuse_until.get(charger, 0.0):
            return connection.respond(HTTPStatus.SERVICE_UNAVAILABLE, "busy\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        charger = ws.request.path.rsplit("/", 1)[-1]
        self.subprotocols[charger] = ws.subprotocol
        self.connections[charger] = ws
        try:
            async for text in ws:
                frame = json.loads(text)
                if frame[0] != 2:
                    future = self.pending.pop(frame[1], None)
                    if future is not None:
                        future.set_result(frame)
                    continue
                _, message_id, action, payload = frame
                self.calls.append((charger, action, payload))
                self.times.append(datetime.now(UTC))
                self.changed.set()
                if self.drop_when is not None and self.drop_when(charger, action, payload):
                    await ws.close()
                    return
                await ws.send(json.dumps([3, message_id, self.answer(charger, action, payload)]))
        except ConnectionClosed:
            pass

    def answer(self, charger: str, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        now = datetime.now(UTC).isoformat()
        if action == "BootNotification":
            return {"status": "Accepted", "currentTime": now, "interval": 300}
        if action == "Heartbeat":
            return {"currentTime": now}
        if action == "Authorize":
            status = "Blocked" if payload.get("idTag") == "BLOCKED" else "Accepted"
            return {"idTagInfo": {"status": status}} if "idTag" in payload else {"idTokenInfo": {"status": status}}
        if action == "StartTransaction":
            key = (charger, payload["connectorId"], payload["meterStart"], payload["timestamp"])
            tx = self.tx_ids.setdefault(key, len(self.tx_ids) + 1)
            return {"transactionId": tx, "idTagInfo": {"status": "Accepted"}}
        if action == "StopTransaction":
            return {"idTagInfo": {"status": "Accepted"}}
        if action == "TransactionEvent" and payload["eventType"] == "Started":
            return {"idTokenInfo": {"status": "Accepted"}}
        return {}

    async def call(self, charger: str, action: str, payload: dict[str, Any]) -> list[Any]:
        message_id = f"csms-{len(self.pending)}-{action}"
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self.pending[message_id] = future
        await self.connections[charger].send(json.dumps([2, message_id, action, payload]))
        async with asyncio.timeout(5):
            return await future


@contextlib.asynccontextmanager
async def fake_csms(**kwargs: Any) -> AsyncIterator[FakeCsms]:
    csms = FakeCsms(**kwargs)
    async with serve(
        csms.handler,
        "127.0.0.1",
        0,
        subprotocols=[Subprotocol(v) for v in VERSIONS],
        process_request=csms.process_request,
    ) as server:
        csms.port = server.sockets[0].getsockname()[1]
        yield csms


def fast_config(url: str, **overrides: Any) -> SimConfig:
    settings: dict[str, Any] = dict(
        url=url,
        chargers=2,
        protocol="mix",
        connectors=2,
        speed=3600.0,
        arrival_rate_per_hour=6.0,
        meter_interval_s=0.1,
        duration_s=3.0,
        seed=7,
        offline_s=(0.3, 0.5),
        reconnect_backoff_s=(0.05, 0.2),
        call_timeout_s=2.0,
        heartbeat_cap_s=0.5,
    )
    settings.update(overrides)
    return SimConfig(**settings)


def check_16_transactions(csms: FakeCsms, charger: str) -> None:
    """Every MeterValues/StopTransaction names an id the CSMS gave; registers never go back."""
    given = {tx for (c, *_), tx in csms.tx_ids.items() if c == charger}
    registers: dict[int, int] = {}
    for c, action, payload in csms.calls:
        if c != charger:
            continue
        if action in ("MeterValues", "StopTransaction"):
            assert payload["transactionId"] in given
        if action == "StartTransaction":
            assert payload["meterStart"] >= registers.get(payload["connectorId"], 0)
            registers[payload["connectorId"]] = payload["meterStart"]
        if action == "MeterValues":
            sampled = payload["meterValue"][0]["sampledValue"]
            energy = next(float(s["value"]) for s in sampled if s["measurand"] == ENERGY)
            assert energy >= registers.get(payload["connectorId"], 0)
            registers[payload["connectorId"]] = int(energy)
            assert {s["measurand"] for s in sampled} >= {ENERGY, "Power.Active.Import", "SoC"}
            assert all(s["context"] == "Sample.Periodic" and isinstance(s["value"], str) for s in sampled)


def check_2x_transactions(csms: FakeCsms, charger: str) -> None:
    """Per transaction: seqNo 0..n without gaps (duplicates from replay allowed), Started first."""
    seen: dict[str, list[dict[str, Any]]] = {}
    for payload in csms.of("TransactionEvent", charger):
        seen.setdefault(payload["transactionInfo"]["transactionId"], []).append(payload)
    for events in seen.values():
        seqs = sorted({e["seqNo"] for e in events})
        assert seqs == list(range(len(seqs)))
        first = next(e for e in events if e["seqNo"] == 0)
        assert first["eventType"] == "Started" and first["idToken"]["type"] == "ISO14443"
        for event in events:
            if event["eventType"] == "Ended":
                assert event["transactionInfo"]["stoppedReason"] in ("EVDisconnected", "Local")
                assert event["seqNo"] == seqs[-1]


async def test_sessions_run_end_to_end_on_both_protocols() -> None:
    async with fake_csms() as csms:
        stats = await run_simulation(fast_config(csms.url()), progress=False)
    ids = ["SIM-0001", "SIM-0002"]
    for charger, version in zip(ids, ["ocpp1.6", "ocpp2.0.1"], strict=True):
        expected = "Basic " + base64.b64encode(f"{charger}:{PASSWORD}".encode()).decode()
        assert csms.auth[charger] == expected
        assert csms.subprotocols[charger] == version
        first = next(a for c, a, _ in csms.calls if c == charger)
        assert first == "BootNotification"
    boot16, boot2 = csms.of("BootNotification", ids[0])[0], csms.of("BootNotification", ids[1])[0]
    assert boot16["chargePointVendor"] == "chargegrid-sim" and boot16["chargePointModel"] == "SimCharger"
    assert boot2["reason"] == "PowerUp" and boot2["chargingStation"]["vendorName"] == "chargegrid-sim"
    assert {p["connectorId"] for p in csms.of("StatusNotification", ids[0])} == {0, 1, 2}
    assert {p["evseId"] for p in csms.of("StatusNotification", ids[1])} == {1, 2}
    assert csms.of("Heartbeat")
    assert stats.sessions_started >= 2 and stats.sessions_completed >= 1
    assert csms.of("StartTransaction", ids[0]) and csms.of("MeterValues", ids[0])
    assert csms.of("StopTransaction", ids[0])
    events = {p["eventType"] for p in csms.of("TransactionEvent", ids[1])}
    assert events == {"Started", "Updated", "Ended"}
    check_16_transactions(csms, ids[0])
    check_2x_transactions(csms, ids[1])
    for stop in csms.of("StopTransaction", ids[0]):
        assert stop["reason"] in ("EVDisconnected", "Local") and stop["idTag"].startswith("SIMTOKEN")
    assert stats.energy_wh > 0 and stats.call_errors == 0 and stats.connected == 0
    assert stats.rejected_auth == 0 and stats.reconnects == 0


async def test_wrong_password_is_counted_and_retried() -> None:
    async with fake_csms(password="the-real-one") as csms:
        stats = await run_simulation(fast_config(csms.url(), chargers=1, duration_s=0.6), progress=False)
    assert stats.rejected_auth >= 2 and stats.booted == 0 and not csms.calls


async def test_in_flight_and_offline_messages_are_replayed_with_patched_ids() -> None:
    """The CSMS drops a 1.6 charger on its 3rd MeterValues without answering and refuses it for a
    second: that MeterValues is sent again, sessions that start offline get their ids on replay."""
    async with fake_csms() as csms:
        dropped: list[dict[str, Any]] = []

        def drop(charger: str, action: str, payload: dict[str, Any]) -> bool:
            if action == "MeterValues" and not dropped and len(csms.of("MeterValues")) == 3:
                dropped.append(payload)
                csms.refuse_until[charger] = asyncio.get_running_loop().time() + 1.0
                return True
            return False

        csms.drop_when = drop
        config = fast_config(
            csms.url(),
            chargers=1,
            connectors=1,
            protocol="1.6",
            speed=36000.0,
            arrival_rate_per_hour=3600.0,
            meter_interval_s=0.05,
            duration_s=2.5,
        )
        stats = await run_simulation(config, progress=False)
    assert dropped and stats.reconnects >= 1 and stats.replayed >= 2
    at_drop = [i for i, (_, a, _) in enumerate(csms.calls) if a == "MeterValues"][2]
    after = csms.calls[at_drop + 1 :]
    assert after[0][1] == "BootNotification"
    assert dropped[0] in [p for _, a, p in after if a == "MeterValues"]  # at-least-once
    reboot_at = csms.times[at_drop + 1]
    offline_starts = [
        p
        for _, a, p in after
        if a == "StartTransaction" and datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")) < reboot_at
    ]
    assert offline_starts  # sessions began while the CSMS refused the charger
    check_16_transactions(csms, "SIM-0001")
    stop_ids = {p["transactionId"] for p in csms.of("StopTransaction")}
    assert len(stop_ids) >= 2 and stats.discarded == 0


async def test_random_drops_buffer_2x_events_as_offline() -> None:
    async with fake_csms() as csms:
        config = fast_config(
            csms.url(),
            chargers=2,
            protocol="mix",
            speed=36000.0,
            connectors=1,
            arrival_rate_per_hour=3600.0,
            meter_interval_s=0.05,
            duration_s=3.0,
            drop_probability_per_hour=0.3,  # about three drops per online real second here
        )
        stats = await run_simulation(config, progress=False)
    assert stats.drops >= 1 and stats.reconnects >= 1 and stats.replayed >= 1
    assert any(p.get("offline") for p in csms.of("TransactionEvent"))
    check_16_transactions(csms, "SIM-0001")
    check_2x_transactions(csms, "SIM-0002")
    assert stats.discarded == 0 and stats.call_errors == 0


async def test_csms_initiated_calls_are_answered() -> None:
    async with fake_csms() as csms:
        config = fast_config(csms.url(), chargers=2, arrival_rate_per_hour=0.0, speed=600.0, duration_s=None)
        run = asyncio.create_task(run_simulation(config, progress=False))
        await csms.until(lambda: not (len(csms.of("BootNotification")) < 2), timeout=5)
        c16, c2 = "SIM-0001", "SIM-0002"
        assert (await csms.call(c16, "Foo", {}))[2] == "NotImplemented"
        config_keys = (await csms.call(c16, "GetConfiguration", {"key": ["HeartbeatInterval", "X"]}))[2]
        assert config_keys["unknownKey"] == ["X"] and config_keys["configurationKey"][0]["value"] == "300"
        profile = {
            "chargingProfileId": 1,
            "stackLevel": 0,
            "chargingProfilePurpose": "TxDefaultProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}],
            },
        }
        answer = await csms.call(c16, "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": profile})
        assert answer[2] == {"status": "Accepted"}
        answer = await csms.call(c16, "RemoteStartTransaction", {"connectorId": 1, "idTag": "REMOTE1"})
        assert answer[2] == {"status": "Accepted"}
        answer = await csms.call(
            c2,
            "RequestStartTransaction",
            {"idToken": {"idToken": "REMOTE2", "type": "Central"}, "remoteStartId": 9, "evseId": 2},
        )
        assert answer[2] == {"status": "Accepted"}
        variables = await csms.call(
            c2,
            "GetVariables",
            {
                "getVariableData": [
                    {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                    {"component": {"name": "Nope"}, "variable": {"name": "X"}},
                ]
            },
        )
        assert [r["attributeStatus"] for r in variables[2]["getVariableResult"]] == ["Accepted", "UnknownComponent"]
        assert (await csms.call(c2, "DataTransfer", {"vendorId": "x"}))[2] == {"status": "UnknownVendorId"}
        assert (
            await csms.call(
                c16, "UpdateFirmware", {"location": "http://x/fw.bin", "retrieveDate": "2024-01-01T00:00:00Z"}
            )
        )[2] == {}
        await csms.until(
            lambda: bool(
                csms.of("StartTransaction")
                and csms.of("MeterValues", c16)
                and len(csms.of("TransactionEvent", c2)) >= 2
            ),
            timeout=5,
        )
        start = csms.of("StartTransaction")[0]
        assert start["idTag"] == "REMOTE1" and start["connectorId"] == 1
        tx16 = csms.tx_ids[(c16, 1, start["meterStart"], start["timestamp"])]
        started = csms.of("TransactionEvent", c2)[0]
        assert started["triggerReason"] == "RemoteStart" and started["transactionInfo"]["remoteStartId"] == 9
        for payload in csms.of("MeterValues", c16):  # 10 A x 230 V x 3 phases caps the power
            power = next(s for s in payload["meterValue"][0]["sampledValue"] if s["measurand"] == "Power.Active.Import")
            assert float(power["value"]) <= 6900
        answer = await csms.call(c16, "RemoteStopTransaction", {"transactionId": tx16})
        assert answer[2] == {"status": "Accepted"}
        tx2 = started["transactionInfo"]["transactionId"]
        assert (await csms.call(c2, "RequestStopTransaction", {"transactionId": tx2}))[2] == {"status": "Accepted"}
        assert (await csms.call(c2, "RequestStopTransaction", {"transactionId": "nope"}))[2] == {"status": "Rejected"}
        answer = await csms.call(c16, "TriggerMessage", {"requestedMessage": "Heartbeat"})
        assert answer[2] == {"status": "Accepted"}
        await csms.until(
            lambda: bool(
                csms.of("StopTransaction")
                and len(csms.of("FirmwareStatusNotification")) == 4
                and any(p["eventType"] == "Ended" for p in csms.of("TransactionEvent"))
            ),
            timeout=6,
        )
        assert csms.of("StopTransaction")[0]["reason"] == "Remote"
        ended = next(p for p in csms.of("TransactionEvent") if p["eventType"] == "Ended")
        assert ended["triggerReason"] == "RemoteStop" and ended["transactionInfo"]["stoppedReason"] == "Remote"
        assert [p["status"] for p in csms.of("FirmwareStatusNotification")] == [
            "Downloading",
            "Downloaded",
            "Installing",
            "Installed",
        ]
        assert (await csms.call(c16, "Reset", {"type": "Soft"}))[2] == {"status": "Accepted"}
        await csms.until(lambda: not (len(csms.of("BootNotification", c16)) < 2), timeout=5)
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
