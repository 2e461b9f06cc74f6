"""Compiled OCPP schema validators: every schema compiles, samples pass, failures carry the right code."""

from __future__ import annotations

from typing import Any

import fastjsonschema
import orjson
import pytest

from chargegrid.core.model import OcppVersion
from chargegrid.ocpp.rpc import ErrorCode
from chargegrid.ocpp.schemas import SchemaViolation, Validators, _violation, validators_for

V16 = OcppVersion.V16
V201 = OcppVersion.V201
V21 = OcppVersion.V21
TS = "2024-05-01T12:00:00.000Z"


@pytest.mark.parametrize(("version", "count"), [(V16, 78), (V201, 128), (V21, 181)])
def test_every_schema_compiles(version: OcppVersion, count: int) -> None:
    # A fresh instance, so the shared cache of other tests is not what is being checked.
    assert Validators(version).compile_all() == count


def test_validators_are_cached_per_version() -> None:
    assert validators_for(V16) is validators_for(V16)
    assert validators_for(V16) is not validators_for(V201)
    assert validators_for(V21).version is V21


def test_known_actions() -> None:
    v16, v201, v21 = validators_for(V16), validators_for(V201), validators_for(V21)
    assert v16.has_request("MeterValues") and v16.has_response("MeterValues")
    assert not v16.has_request("TransactionEvent")
    assert not v16.has_request("MeterValuesResponse")
    assert v201.has_request("TransactionEvent") and not v201.has_request("TransactionEventRequest")
    # 2.1 SEND-only message: a request without a response.
    assert v21.has_request("NotifyPeriodicEventStream") and not v21.has_response("NotifyPeriodicEventStream")
    assert not v201.has_request("../../etc/passwd")


SAMPLES: dict[OcppVersion, dict[str, dict[str, Any]]] = {
    V16: {
        "BootNotification": {
            "chargePointVendor": "Acme",
            "chargePointModel": "Volt 22",
            "firmwareVersion": "1.2",
        },
        "MeterValues": {
            "connectorId": 1,
            "transactionId": 42,
            "meterValue": [
                {
                    "timestamp": TS,
                    "sampledValue": [
                        {
                            "value": "12345.6",
                            "context": "Sample.Periodic",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "Wh",
                            "location": "Outlet",
                        },
                        {"value": "7200", "measurand": "Power.Active.Import", "unit": "W"},
                        {"value": "32.0", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
                        {"value": "230.1", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
                    ],
                }
            ],
        },
        "StatusNotification": {
            "connectorId": 1,
            "errorCode": "NoError",
            "status": "Available",
            "timestamp": TS,
        },
    },
    V201: {
        "BootNotification": {
            "reason": "PowerUp",
            "chargingStation": {"model": "Volt 22", "vendorName": "Acme"},
        },
        "MeterValues": {
            "evseId": 1,
            "meterValue": [
                {
                    "timestamp": TS,
                    "sampledValue": [
                        {
                            "value": 12345.6,
                            "measurand": "Energy.Active.Import.Register",
                            "unitOfMeasure": {"unit": "Wh"},
                        },
                    ],
                }
            ],
        },
        "StatusNotification": {"timestamp": TS, "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
        "TransactionEvent": {
            "eventType": "Started",
            "timestamp": TS,
            "triggerReason": "Authorized",
            "seqNo": 0,
            "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
            "idToken": {"idToken": "04A2B3C4", "type": "ISO14443"},
            "evse": {"id": 1, "connectorId": 1},
        },
    },
}
SAMPLES[V21] = SAMPLES[V201]


@pytest.mark.parametrize(
    ("version", "action"), [(version, action) for version, actions in SAMPLES.items() for action in actions]
)
def test_valid_samples_pass(version: OcppVersion, action: str) -> None:
    payload = SAMPLES[version][action]
    before = orjson.dumps(payload)
    validators_for(version).validate_request(action, payload)
    assert orjson.dumps(payload) == before  # no defaults filled in


@pytest.mark.parametrize("version", [V201, V21])
def test_valid_response(version: OcppVersion) -> None:
    validators_for(version).validate_response(
        "BootNotification", {"currentTime": TS, "interval": 300, "status": "Accepted"}
    )


def violation(
    version: OcppVersion, action: str, payload: dict[str, Any], *, response: bool = False
) -> SchemaViolation:
    v = validators_for(version)
    with pytest.raises(SchemaViolation) as info:
        if response:
            v.validate_response(action, payload)
        else:
            v.validate_request(action, payload)
    return info.value


def mv16(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = orjson.loads(orjson.dumps(SAMPLES[V16]["MeterValues"]))
    payload.update(changes)
    return payload


OCPP_FAILURES: list[tuple[str, OcppVersion, str, dict[str, Any], ErrorCode, str]] = [
    # (rule, version, action, payload, code, text the description must contain)
    (
        "required",
        V16,
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError"},
        ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
        "status",
    ),
    (
        "minItems",
        V16,
        "MeterValues",
        mv16(meterValue=[]),
        ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
        "data.meterValue",
    ),
    (
        "maxItems",
        V201,
        "Authorize",
        {
            "idToken": {"idToken": "x", "type": "ISO14443"},
            "iso15118CertificateHashData": [
                {
                    "hashAlgorithm": "SHA256",
                    "issuerNameHash": "a",
                    "issuerKeyHash": "b",
                    "serialNumber": "c",
                    "responderURL": "d",
                }
            ]
            * 5,
        },
        ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
        "iso15118CertificateHashData",
    ),
    (
        "type",
        V16,
        "MeterValues",
        mv16(connectorId="1"),
        ErrorCode.TYPE_CONSTRAINT_VIOLATION,
        "data.connectorId",
    ),
    (
        "enum",
        V16,
        "StatusNotification",
        {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"},
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        "data.status",
    ),
    (
        "maxLength",
        V16,
        "BootNotification",
        {"chargePointVendor": "v" * 21, "chargePointModel": "m"},
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        "data.chargePointVendor",
    ),
    (
        "minimum",
        V201,
        "NotifyEVChargingNeeds",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC",
                "dcChargingParameters": {"evMaxCurrent": 100, "evMaxVoltage": 400, "stateOfCharge": -1},
            },
        },
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        "stateOfCharge",
    ),
    (
        "maximum",
        V201,
        "NotifyEVChargingNeeds",
        {
            "evseId": 1,
            "chargingNeeds": {
                "requestedEnergyTransfer": "DC",
                "dcChargingParameters": {"evMaxCurrent": 100, "evMaxVoltage": 400, "stateOfCharge": 101},
            },
        },
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        "stateOfCharge",
    ),
    (
        "format",
        V16,
        "MeterValues",
        mv16(meterValue=[{"timestamp": "yesterday", "sampledValue": [{"value": "1"}]}]),
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
        "data.meterValue[0].timestamp must be date-time",
    ),
    (
        "additionalProperties",
        V16,
        "BootNotification",
        {"chargePointVendor": "v", "chargePointModel": "m", "colour": "red"},
        ErrorCode.FORMAT_VIOLATION,
        "colour",
    ),
]


@pytest.mark.parametrize(
    ("rule", "version", "action", "payload", "code", "text"), OCPP_FAILURES, ids=[f[0] for f in OCPP_FAILURES]
)
def test_real_schema_failures_map_to_codes(
    rule: str, version: OcppVersion, action: str, payload: dict[str, Any], code: ErrorCode, text: str
) -> None:
    exc = violation(version, action, payload)
    assert exc.code is code
    assert text in exc.description
    assert len(exc.description) <= 200


# Rules no OCPP schema uses today (checked: no minLength, pattern, exclusive bounds or combinators);
# the mapping is still pinned so a schema update cannot silently turn them into FormatViolation.
SYNTHETIC: list[tuple[dict[str, Any], Any, ErrorCode]] = [
    ({"type": "string", "minLength": 2}, "a", ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
    ({"type": "string", "pattern": "^[0-9]+$"}, "a", ErrorCode.PROPERTY_CONSTRAINT_VIOLATION),
    (
        {"$schema": "http://json-schema.org/draft-06/schema#", "exclusiveMinimum": 0},
        0,
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    ),
    (
        {"$schema": "http://json-schema.org/draft-06/schema#", "exclusiveMaximum": 0},
        0,
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    ),
    ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, 1.5, ErrorCode.FORMAT_VIOLATION),
]


@pytest.mark.parametrize(("schema", "value", "code"), SYNTHETIC)
def test_other_rules_map_to_codes(schema: dict[str, Any], value: Any, code: ErrorCode) -> None:
    with pytest.raises(fastjsonschema.JsonSchemaValueException) as info:
        fastjsonschema.compile(schema)(value)
    assert _violation(info.value).code is code


def test_unknown_action_is_not_implemented() -> None:
    exc = violation(V16, "TransactionEvent", {})
    assert exc.code is ErrorCode.NOT_IMPLEMENTED
    assert violation(V21, "NotifyPeriodicEventStream", {}, response=True).code is ErrorCode.NOT_IMPLEMENTED


def test_long_descriptions_are_cut() -> None:
    exc = violation(V201, "TransactionEvent", {**SAMPLES[V201]["TransactionEvent"], "triggerReason": "Whim"})
    assert exc.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert exc.description.startswith("data.triggerReason must be one of")
    assert len(exc.description) == 200 and exc.description.endswith("...")


def composite_schedule(limit_literal: str) -> dict[str, Any]:
    # Parsed from JSON text, as a charger's frame would be.
    result: dict[str, Any] = orjson.loads(
        '{"status":"Accepted","connectorId":1,"chargingSchedule":{"chargingRateUnit":"A",'
        '"chargingSchedulePeriod":[{"startPeriod":0,"limit":' + limit_literal + "}]}}"
    )
    return result


def test_multiple_of_accepts_every_one_decimal_value() -> None:
    v = validators_for(V16)
    literals = [f"{i // 10}.{i % 10}" for i in range(0, 10001)] + [
        "0.3",
        "1.1",
        "16.7",
        "6553.5",
        "32",
        "1e1",
    ]
    for literal in literals:
        v.validate_response("GetCompositeSchedule", composite_schedule(literal))


@pytest.mark.parametrize("literal", ["0.15", "16.75", "0.30000000000000004"])
def test_multiple_of_rejects_non_multiples(literal: str) -> None:
    # Float noise is refused too: fastjsonschema checks the shortest decimal literal, exactly.
    exc = violation(V16, "GetCompositeSchedule", composite_schedule(literal), response=True)
    assert exc.code is ErrorCode.PROPERTY_CONSTRAINT_VIOLATION
    assert "limit must be multiple of 0.1" in exc.description
