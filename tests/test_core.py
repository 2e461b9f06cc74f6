"""Unit and property tests of the pure core."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from chargegrid.core import sessions as S
from chargegrid.core.auth import authorize
from chargegrid.core.connectors import make_status, normalize_status, supersedes
from chargegrid.core.credentials import hash_api_key, hash_password, verify_password
from chargegrid.core.meter import (
    energy_register_wh,
    make_sample,
    parse_timestamp,
    power_w,
    samples_v16,
    soc_percent,
    values_v2,
    values_v16,
)
from chargegrid.core.model import ConnectorState, IdToken, OcppVersion, SessionStatus, TokenStatus

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def sample(register_wh: float, seconds: float, tx: str = "1", power: float | None = None):  # type: ignore[no-untyped-def]
    values = [{"value": str(register_wh), "measurand": "Energy.Active.Import.Register"}]
    if power is not None:
        values.append({"value": str(power), "measurand": "Power.Active.Import", "unit": "W"})
    return make_sample(charger_id="CP", evse_id=1, connector_id=1, transaction_id=tx, timestamp=at(seconds),
                       values=values_v16(values))


# -- auth ----------------------------------------------------------------------------------------
def test_authorize_rules() -> None:
    assert authorize(None, T0) is TokenStatus.INVALID
    assert authorize(IdToken(token="a"), T0) is TokenStatus.ACCEPTED
    assert authorize(IdToken(token="a", status=TokenStatus.BLOCKED), T0) is TokenStatus.BLOCKED
    assert authorize(IdToken(token="a", expires_at=T0), T0) is TokenStatus.EXPIRED  # inclusive
    assert authorize(IdToken(token="a", expires_at=at(1)), T0) is TokenStatus.ACCEPTED
    assert authorize(IdToken(token="a", status=TokenStatus.BLOCKED, expires_at=at(-1)), T0) is TokenStatus.EXPIRED


def test_password_hashing() -> None:
    h = hash_password("s3cret-password", b"0123456789abcdef")
    assert verify_password("s3cret-password", h)
    assert not verify_password("s3cret-passwore", h)
    assert not verify_password("x", "garbage")
    assert not verify_password("x", "md5$1$00$00")
    assert hash_api_key("k") != hash_api_key("k2") and len(hash_api_key("k")) == 64


# -- connectors ------------------------------------------------------------------------------------
def test_status_vocabulary() -> None:
    assert normalize_status("Charging") is ConnectorState.OCCUPIED
    assert normalize_status("SuspendedEV") is ConnectorState.OCCUPIED
    assert normalize_status("Occupied") is ConnectorState.OCCUPIED
    assert normalize_status("Available") is ConnectorState.AVAILABLE
    assert normalize_status("Reserved") is ConnectorState.RESERVED
    assert normalize_status("Faulted") is ConnectorState.FAULTED
    assert normalize_status("???") is ConnectorState.UNAVAILABLE


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=30))
def test_newest_status_wins_in_any_order(offsets: list[int]) -> None:
    current = None
    for o in offsets:
        cand = make_status(charger_id="C", evse_id=1, connector_id=1, raw_status=f"S{o}", error_code="NoError",
                           at=at(o))
        if supersedes(current, cand):
            current = cand
    assert current is not None and current.updated_at == at(max(offsets))
    assert current.error_code is None


# -- meter values ------------------------------------------------------------------------------------
def test_units_normalised() -> None:
    v16 = values_v16([
        {"value": "12.5", "unit": "kWh"},
        {"value": "7.2", "unit": "kW", "measurand": "Power.Active.Import"},
        {"value": "abc", "format": "SignedData"},
        {"value": "61", "unit": "Percent", "measurand": "SoC", "location": "EV"},
    ])
    assert energy_register_wh(v16) == 12500 and power_w(v16) == 7200 and soc_percent(v16) == 61
    v2 = values_v2([
        {"value": 12.5, "unitOfMeasure": {"unit": "kWh"}},
        {"value": 72, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "W", "multiplier": 2}},
    ])
    assert energy_register_wh(v2) == 12500 and power_w(v2) == 7200


def test_phase_values_summed_and_ev_side_ignored() -> None:
    vals = values_v2([
        {"value": 2000, "measurand": "Power.Active.Import", "phase": "L1", "unitOfMeasure": {"unit": "W"}},
        {"value": 2100, "measurand": "Power.Active.Import", "phase": "L2", "unitOfMeasure": {"unit": "W"}},
        {"value": 9999, "measurand": "Power.Active.Import", "location": "EV", "unitOfMeasure": {"unit": "W"}},
    ])
    assert power_w(vals) == 4100


def test_timestamps() -> None:
    assert parse_timestamp("2026-01-01T12:00:00Z") == T0
    assert parse_timestamp("2026-01-01T13:00:00+01:00") == T0
    assert parse_timestamp("2026-01-01T12:00:00") == T0  # naive means UTC


def test_digest_identifies_content() -> None:
    """The digest tells apart samples of one charger at one instant (the store's key adds the
    charger and the timestamp, tested in test_store_idempotency)."""
    assert sample(100, 0).digest == sample(100, 0).digest
    assert sample(100, 0).digest != sample(101, 0).digest
    assert sample(100, 0, tx="1").digest != sample(100, 0, tx="2").digest
    ctx = make_sample(charger_id="CP", evse_id=1, connector_id=1, transaction_id="1", timestamp=at(0),
                      values=values_v16([{"value": "100", "context": "Sample.Clock"}]))
    assert ctx.digest != sample(100, 0).digest


# -- sessions ------------------------------------------------------------------------------------------
def test_v16_lifecycle() -> None:
    s = S.start_v16(charger_id="CP", connector_id=1, id_tag="T", meter_start_wh=1000, at=at(0))
    s = dataclasses.replace(s, id=1, transaction_id="1")
    s = S.apply_sample(s, sample(1500, 60, power=7000))
    assert s.energy_wh == 500 and s.power_w == 7000
    s = S.apply_sample(s, sample(1200, 30))  # an older replayed sample does not rewind
    assert s.energy_wh == 500
    done = S.stop(s, at=at(120), meter_stop_wh=2000, reason="EVDisconnected")
    assert done.status is SessionStatus.COMPLETED and done.energy_wh == 1000 and done.power_w == 0
    assert S.stop(done, at=at(500), meter_stop_wh=9999, reason="Other") is done
    assert S.apply_sample(done, sample(5000, 130)) is done


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=40))
def test_energy_is_latest_minus_start_and_never_negative(registers: list[int]) -> None:
    s = S.start_v16(charger_id="CP", connector_id=1, id_tag="T", meter_start_wh=0, at=at(0))
    s = dataclasses.replace(s, id=1, transaction_id="1")
    for i, r in enumerate(registers):
        s = S.apply_sample(s, sample(r, i + 1))
    assert s.energy_wh == max(0, registers[-1])
    assert s.energy_wh >= 0


def tx_event(kind: str, seq: int, seconds: float, register: float | None = None) -> S.TxEvent:
    samples = ()
    if register is not None:
        samples = (make_sample(charger_id="CP", evse_id=1, connector_id=1, transaction_id="tx", timestamp=at(seconds),
                               values=values_v2([{"value": register}])),)
    return S.TxEvent(event_type=kind, transaction_id="tx", seq_no=seq, timestamp=at(seconds), evse_id=1,
                     connector_id=1, id_token="T" if kind == "Started" else None,
                     stopped_reason="EVDisconnected" if kind == "Ended" else None, samples=samples)


@settings(max_examples=200)
@given(st.integers(1, 8), st.randoms(use_true_random=False))
def test_v2_events_merge_independent_of_order(updates: int, rnd) -> None:  # type: ignore[no-untyped-def]
    events = [tx_event("Started", 0, 0, 1000)]
    events += [tx_event("Updated", i, i * 60, 1000 + 100 * i) for i in range(1, updates + 1)]
    events.append(tx_event("Ended", updates + 1, (updates + 1) * 60, 1000 + 100 * (updates + 1)))

    def fold(evs: list[S.TxEvent]):  # type: ignore[no-untyped-def]
        s = None
        for e in evs:
            s = S.apply_event(s, e, charger_id="CP", version=OcppVersion.V201)
        return s

    in_order = fold(events)
    shuffled = list(events)
    rnd.shuffle(shuffled)
    other = fold(shuffled)
    assert in_order is not None and other is not None
    assert in_order.status is SessionStatus.COMPLETED
    assert in_order.energy_wh == 100 * (updates + 1)
    assert other.status is SessionStatus.COMPLETED and other.energy_wh == in_order.energy_wh
    assert other.started_at == in_order.started_at and other.id_token == "T"
    assert other.stopped_at == in_order.stopped_at and other.stop_reason == "EVDisconnected"
    assert other.last_seq_no == updates + 1


@given(st.lists(st.fixed_dictionaries(
    {"value": st.one_of(st.floats(-1e6, 1e6).map(str), st.sampled_from(["x", "", "1e3"]))},
    optional={"unit": st.sampled_from(["Wh", "kWh", "W", "kW", "A", "Percent"]),
              "measurand": st.sampled_from(["Power.Active.Import", "SoC", "Voltage"]),
              "phase": st.sampled_from(["L1", "L2-N"]), "context": st.sampled_from(["Sample.Clock", "Trigger"]),
              "format": st.sampled_from(["Raw", "SignedData"])}), min_size=1, max_size=5),
       st.sampled_from([None, "7"]))
def test_one_pass_samples_equal_the_composed_ones(sampled: list[dict[str, str]], tx: str | None) -> None:
    meter_values = [{"timestamp": "2026-01-01T12:00:00Z", "sampledValue": sampled}]
    fast = samples_v16(charger_id="CP", evse_id=2, connector_id=2, transaction_id=tx, meter_values=meter_values)
    slow = make_sample(charger_id="CP", evse_id=2, connector_id=2, transaction_id=tx, timestamp=T0,
                       values=values_v16(sampled))
    assert fast == (slow,)
