"""The fast validator (jsonschema-rs) and the explaining one (fastjsonschema) must agree.

The verdict on the hot path comes from jsonschema-rs; fastjsonschema only explains refusals.
If they disagreed, a payload could be accepted that the schema refuses, or refused with no
reason. Hypothesis mutates valid payloads in the ways chargers get them wrong.
"""

from __future__ import annotations

import copy
from typing import Any

import fastjsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargegrid.core.model import OcppVersion
from chargegrid.ocpp.schemas import SchemaViolation, _load, validators_for

METER_16 = {"connectorId": 1, "transactionId": 7, "meterValue": [{"timestamp": "2026-11-25T10:00:00Z", "sampledValue": [
    {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh", "context": "Sample.Periodic"},
    {"value": "16.1", "measurand": "Current.Import", "unit": "A", "phase": "L1"}]}]}
TX_201 = {"eventType": "Updated", "timestamp": "2026-11-25T10:00:00Z", "triggerReason": "MeterValuePeriodic",
          "seqNo": 3, "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
          "evse": {"id": 1, "connectorId": 1},
          "meterValue": [{"timestamp": "2026-11-25T10:00:00Z", "sampledValue": [
              {"value": 1234.5, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}}]}]}

CASES = [(OcppVersion.V16, "MeterValues", "MeterValues.json", METER_16),
         (OcppVersion.V201, "TransactionEvent", "TransactionEventRequest.json", TX_201)]

# Values a buggy charger sends where something else belongs (integers stay integers: JSON
# Schema counts 1.0 as an integer, fastjsonschema does not; see ocpp/schemas.py).
JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=30), st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not x.is_integer()),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
                 st.sampled_from(["2026-13-01T00:00:00Z", "Bogus", "", "2026-11-25T10:00:00", "L9", "kWh"]))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _mutate(payload: dict[str, Any], path: tuple[Any, ...], how: str, junk: Any) -> dict[str, Any]:
    doc = copy.deepcopy(payload)
    parent: Any = doc
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if how == "delete" and isinstance(parent, dict):
        del parent[last]
    elif how == "extra" and isinstance(parent, dict):
        parent["unexpectedField"] = junk
    else:
        parent[last] = junk
    return doc


@pytest.mark.parametrize(("version", "action", "file_name", "valid"), CASES, ids=[c[1] for c in CASES])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_fast_and_explaining_validators_agree(
    version: OcppVersion, action: str, file_name: str, valid: dict[str, Any], data: st.DataObject
) -> None:
    explain = fastjsonschema.compile(_load(version, file_name), use_default=False)
    path = data.draw(st.sampled_from(_paths(valid)))
    payload = _mutate(valid, path, data.draw(st.sampled_from(["replace", "delete", "extra"])), data.draw(JUNK))
    try:
        explain(payload)
        expected_ok = True
    except fastjsonschema.JsonSchemaValueException:
        expected_ok = False
    try:
        validators_for(version).validate_request(action, payload)
        ok = True
    except SchemaViolation as exc:
        ok = False
        assert exc.description  # a refusal always says why
    assert ok == expected_ok, payload
