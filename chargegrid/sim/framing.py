"""OCPP-J framing for the simulator, written here because the simulator is a client that must not
depend on the server's ``chargegrid.ocpp`` package (an import-linter contract).

Rules:
- CALL ``[2, id, action, payload]``, CALLRESULT ``[3, id, payload]``,
  CALLERROR ``[4, id, code, description, details]``; ids are strings, payloads JSON objects.
- ``decode`` never raises: anything that is not one of the three shapes comes back as ``Malformed``
  so the reader can answer or ignore it and keep the connection up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

CALL = 2
CALLRESULT = 3
CALLERROR = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallError:
    message_id: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Malformed:
    message_id: str | None
    reason: str


Frame = Call | CallResult | CallError | Malformed


def encode_call(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([CALL, message_id, action, payload]).decode()


def encode_result(message_id: str, payload: dict[str, Any]) -> str:
    return orjson.dumps([CALLRESULT, message_id, payload]).decode()


def encode_error(message_id: str, code: str, description: str = "", details: dict[str, Any] | None = None) -> str:
    return orjson.dumps([CALLERROR, message_id, code, description, details or {}]).decode()


def decode(text: str | bytes) -> Frame:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return Malformed(message_id=None, reason="not JSON")
    if not isinstance(data, list) or len(data) < 3 or not isinstance(data[1], str):
        return Malformed(message_id=None, reason="not an OCPP-J array")
    kind, message_id = data[0], data[1]
    if kind == CALL and len(data) == 4 and isinstance(data[2], str) and isinstance(data[3], dict):
        return Call(message_id=message_id, action=data[2], payload=data[3])
    if kind == CALLRESULT and len(data) == 3 and isinstance(data[2], dict):
        return CallResult(message_id=message_id, payload=data[2])
    if kind == CALLERROR and len(data) >= 4:
        details = data[4] if len(data) > 4 and isinstance(data[4], dict) else {}
        return CallError(message_id=message_id, code=str(data[2]), description=str(data[3]), details=details)
    return Malformed(message_id=message_id, reason="bad frame shape")
