"""Sans-I/O OCPP-J RPC core: framing, message ids, one outstanding CALL, timeouts.

This module never touches a socket, a task or a clock. The transport hands it each WebSocket text
frame with ``receive_text(data, now)`` and gets back at most one event; it writes whatever
``data_to_send()`` returns, wakes up at ``next_deadline()`` and calls ``expire(now)``.

Why hand-written: the ``ocpp`` package's ``ChargePoint`` costs about 3 ms per message (jsonschema
validation hopped onto a thread pool, regex camelCase/snake_case conversion of every key). The whole
server has about 150 µs of CPU per MeterValues call, so this layer parses with orjson, checks shapes
with ``type(x) is ...`` comparisons and allocates only the event it returns.

Rules (OCPP-J 1.6 section 4, OCPP 2.0.1 part 4, OCPP 2.1 part 4):

1. One frame is one message: ``[2, id, action, payload]`` CALL, ``[3, id, payload]`` CALLRESULT,
   ``[4, id, code, description, details]`` CALLERROR. OCPP 2.1 adds ``[5, id, code, description,
   details]`` CALLRESULTERROR (the peer rejects one of our CALLRESULTs) and ``[6, id, action,
   payload]`` SEND (a CALL that is never answered); 1.6 and 2.0.1 treat 5 and 6 as unknown types.
2. Message ids are strings of at most 36 characters (both 1.6 and 2.x say so, to fit a GUID).
3. At most one of our CALLs is on the wire. ``send_call`` while one is outstanding queues the new
   CALL (up to ``max_queued_calls``, then ``RpcQueueFull``); it goes out when the outstanding one is
   answered or times out, and its own timeout starts then.
4. Every ``send_call`` ends in exactly one ``ResultReceived``, ``ErrorReceived`` or ``CallTimedOut``
   (``expire`` or ``cancel_all``). A malformed CALLRESULT/CALLERROR that carries the outstanding id
   still ends that call, as an ``ErrorReceived`` with the version's FormatViolation code and a
   description starting "malformed", so a command fails now instead of 30 s later.
5. Bad input never raises and never breaks the connection; it yields ``FrameRejected``:
   - not JSON: CALLERROR id "-1", RpcFrameworkError (1.6: FormationViolation);
   - not a non-empty array, message type id not an integer, a CALL of the wrong length, a non-string
     or over-long id, a non-string action, a payload that is not an object: CALLERROR FormatViolation
     (1.6: FormationViolation) with the sender's id when it is a string, else "-1";
   - an unknown integer message type: CALLERROR MessageTypeNotSupported (1.6: FormationViolation);
   - a CALLRESULT/CALLERROR for an id we are not waiting on: no reply (an answer is never answered,
     so a malformed CALLERROR gets no CALLERROR back either, which also rules out error ping-pong
     between two confused peers). An answer to a call that already timed out is dropped silently:
     ``receive_text`` returns None.
   - a 2.1 CALLRESULTERROR or a malformed 2.1 SEND: no reply (neither is ever answered).
6. Inbound CALLs are passed through even while another inbound CALL is unanswered: the spec forbids
   the charger from doing that, but many do, and refusing would only lose their data.
7. A 2.1 SEND yields ``CallReceived(unconfirmed=True)``; ``send_result``/``send_error`` for its id
   are dropped, so generic dispatch code cannot answer it by mistake.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import orjson

from chargegrid.core.model import OcppVersion

__all__ = [
    "CallReceived",
    "CallTimedOut",
    "ErrorCode",
    "ErrorReceived",
    "Event",
    "FrameRejected",
    "ResultReceived",
    "RpcProtocol",
    "RpcQueueFull",
    "encode_error",
    "encode_result",
    "wire_code",
]

MAX_MESSAGE_ID_LENGTH: Final = 36
# OCPP 2.0.1 caps errorDescription at 255 characters; 1.6 sets no cap, the same cap does no harm.
MAX_DESCRIPTION_LENGTH: Final = 255
# Late answers to timed-out calls are recognised for this many calls back, then count as unknown.
_EXPIRED_MEMORY: Final = 16
# Bound on remembered 2.1 SEND ids whose (dropped) answer may still come from dispatch code.
_SEND_MEMORY: Final = 64

_CALL: Final = 2
_CALLRESULT: Final = 3
_CALLERROR: Final = 4
_CALLRESULTERROR: Final = 5
_SEND: Final = 6

_loads = orjson.loads
_dumps = orjson.dumps
_JSONDecodeError = orjson.JSONDecodeError


class ErrorCode(StrEnum):
    """CALLERROR codes under neutral names; the value is the OCPP 2.0.1/2.1 wire spelling.

    Use ``wire_code`` to write one: 1.6 spells two of them differently and lacks two others.
    """

    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"


_V16_SPELLING: Final[dict[ErrorCode, str]] = {
    ErrorCode.FORMAT_VIOLATION: "FormationViolation",
    # Misspelt in the 1.6 specification itself; chargers match on this exact string.
    ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    # 1.6 has neither code. Both mean "this frame is not a well-formed OCPP-J message", which is
    # what 1.6's FormationViolation covers ("not conform the PDU structure"); GenericError would
    # hide the cause from the charger's log.
    ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "FormationViolation",
    ErrorCode.RPC_FRAMEWORK_ERROR: "FormationViolation",
}
_WIRE: Final[dict[OcppVersion, dict[ErrorCode, str]]] = {
    OcppVersion.V16: {code: _V16_SPELLING.get(code, code.value) for code in ErrorCode},
    OcppVersion.V201: {code: code.value for code in ErrorCode},
    OcppVersion.V21: {code: code.value for code in ErrorCode},
}


def wire_code(code: ErrorCode, version: OcppVersion) -> str:
    """The errorCode string ``version`` puts on the wire for ``code``."""
    return _WIRE[version][code]


class RpcQueueFull(Exception):
    """``send_call`` found ``max_queued_calls`` CALLs already waiting behind the outstanding one.

    A charger this far behind is not keeping up; the caller should fail the command, not wait.
    """


@dataclass(frozen=True, slots=True)
class CallReceived:
    """The peer's CALL (or, with ``unconfirmed``, its 2.1 SEND, which must not be answered)."""

    message_id: str
    action: str
    payload: dict[str, Any]
    unconfirmed: bool = field(default=False, compare=False)


@dataclass(frozen=True, slots=True)
class ResultReceived:
    """The CALLRESULT to our CALL; ``action`` is that CALL's action, since the frame omits it."""

    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ErrorReceived:
    """The CALLERROR to our CALL. ``code`` is the peer's string as sent (1.6 or 2.x spelling)."""

    message_id: str
    action: str
    code: str
    description: str
    details: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallTimedOut:
    """Our CALL got no answer in time, or the connection went away (``cancel_all``)."""

    message_id: str
    action: str


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """A frame that was not a usable message. ``code`` is set iff a CALLERROR was queued."""

    reason: str
    code: ErrorCode | None


Event = CallReceived | ResultReceived | ErrorReceived | CallTimedOut | FrameRejected


def encode_result(message_id: str, payload: dict[str, Any]) -> bytes:
    """A CALLRESULT frame."""
    return _dumps([_CALLRESULT, message_id, payload])


def encode_error(message_id: str, wire: str, description: str, details: dict[str, Any] | None) -> bytes:
    """A CALLERROR frame; ``wire`` is an already version-spelt error code."""
    return _dumps([_CALLERROR, message_id, wire, description[:MAX_DESCRIPTION_LENGTH], details or {}])


def _readable_id(msg: list[Any]) -> str:
    """The sender's id if it is a string at all, so it can match the CALLERROR to its request."""
    if len(msg) > 1:
        candidate = msg[1]
        if type(candidate) is str:
            return candidate
    return "-1"


class RpcProtocol:
    """One connection's OCPP-J state: our outstanding CALL, its queue and the outbound frames.

    ``now`` is monotonic seconds, supplied by the caller; deadlines are on the same scale.
    """

    __slots__ = (
        "_call_timeout",
        "_deadline",
        "_expired",
        "_max_queued",
        "_out",
        "_out_action",
        "_out_id",
        "_queue",
        "_unanswerable",
        "_v21",
        "_wire",
        "version",
    )

    def __init__(
        self, version: OcppVersion, *, call_timeout: float = 30.0, max_queued_calls: int = 100
    ) -> None:
        self.version: OcppVersion = version
        self._wire = _WIRE[version]
        self._v21 = version is OcppVersion.V21
        self._call_timeout = call_timeout
        self._max_queued = max_queued_calls
        self._out: list[bytes] = []
        self._out_id: str | None = None
        self._out_action = ""
        self._deadline: float | None = None
        # (message id, action, encoded frame): encoded at send_call so a bad payload fails its caller.
        self._queue: deque[tuple[str, str, bytes]] = deque()
        self._expired: deque[str] = deque(maxlen=_EXPIRED_MEMORY)
        self._unanswerable: dict[str, None] = {}

    # ---- inbound -------------------------------------------------------------------------------

    def receive_text(self, data: str | bytes, now: float) -> Event | None:
        """Turn one text frame into at most one event; queue a CALLERROR where one is due."""
        try:
            msg = _loads(data)
        except _JSONDecodeError:
            return self._reject("-1", ErrorCode.RPC_FRAMEWORK_ERROR, "frame is not valid JSON")
        if type(msg) is not list or not msg:
            return self._reject("-1", ErrorCode.FORMAT_VIOLATION, "frame is not a non-empty JSON array")
        mtype = msg[0]
        if type(mtype) is not int:  # also refuses true/false and 2.0, which == 2 in Python
            return self._reject(
                _readable_id(msg), ErrorCode.FORMAT_VIOLATION, "message type id is not an integer"
            )
        if mtype == _CALL:
            # Fast path first: the valid CALL is the frame a server sees thousands of times a second.
            if len(msg) == 4:
                mid, action, payload = msg[1], msg[2], msg[3]
                if (
                    type(mid) is str
                    and type(action) is str
                    and type(payload) is dict
                    and len(mid) <= MAX_MESSAGE_ID_LENGTH
                ):
                    if self._unanswerable:
                        self._unanswerable.pop(mid, None)
                    return CallReceived(mid, action, payload)
            return self._bad_call(msg, "CALL")
        if mtype in (_CALLRESULT, _CALLERROR):
            return self._answer(msg, mtype, now)
        if self._v21:
            if mtype == _SEND:
                return self._send(msg)
            if mtype == _CALLRESULTERROR:
                return FrameRejected(f"peer rejected our CALLRESULT {_readable_id(msg)!r}", None)
        return self._reject(
            _readable_id(msg), ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, f"message type id {mtype} not supported"
        )

    def _reject(self, message_id: str, code: ErrorCode, reason: str) -> FrameRejected:
        self._out.append(encode_error(message_id, self._wire[code], reason, None))
        return FrameRejected(reason, code)

    def _shape_problem(self, msg: list[Any], kind: str) -> str | None:
        """Why a CALL-shaped frame ([type, id, action, payload]) is unusable, or None if it is fine."""
        if len(msg) != 4:
            return f"{kind} must have 4 elements, got {len(msg)}"
        mid, action, payload = msg[1], msg[2], msg[3]
        if type(mid) is not str:
            return "message id is not a string"
        if len(mid) > MAX_MESSAGE_ID_LENGTH:
            return f"message id longer than {MAX_MESSAGE_ID_LENGTH} characters"
        if type(action) is not str:
            return "action is not a string"
        if type(payload) is not dict:
            return f"{kind} payload is not a JSON object"
        return None

    def _bad_call(self, msg: list[Any], kind: str) -> FrameRejected:
        reason = self._shape_problem(msg, kind)
        assert reason is not None  # only reached after the fast path refused the frame
        return self._reject(_readable_id(msg), ErrorCode.FORMAT_VIOLATION, reason)

    def _send(self, msg: list[Any]) -> Event:
        reason = self._shape_problem(msg, "SEND")
        if reason is not None:
            return FrameRejected(reason, None)
        mid: str = msg[1]
        unanswerable = self._unanswerable
        unanswerable[mid] = None
        if len(unanswerable) > _SEND_MEMORY:
            del unanswerable[next(iter(unanswerable))]
        return CallReceived(mid, msg[2], msg[3], unconfirmed=True)

    def _answer(self, msg: list[Any], mtype: int, now: float) -> Event | None:
        kind = "CALLRESULT" if mtype == _CALLRESULT else "CALLERROR"
        n = len(msg)
        mid = msg[1] if n > 1 else None
        if type(mid) is not str:
            return FrameRejected(f"{kind} without a string message id", None)
        if mid != self._out_id:
            if mid in self._expired:
                return None
            return FrameRejected(f"{kind} for unknown message id {mid[:MAX_MESSAGE_ID_LENGTH]!r}", None)
        action = self._out_action
        event: Event
        if mtype == _CALLRESULT:
            if n == 3 and type(msg[2]) is dict:
                event = ResultReceived(mid, action, msg[2])
            else:
                event = self._malformed(mid, action, "malformed CALLRESULT: want [3, id, {payload}]")
        # Lenient on CALLERRORs: some 1.6 chargers omit details or send null; nothing is answered anyway.
        elif (n == 4 or n == 5) and type(msg[2]) is str:
            description = msg[3] if type(msg[3]) is str else ""
            details = msg[4] if n == 5 and type(msg[4]) is dict else {}
            event = ErrorReceived(mid, action, msg[2], description, details)
        else:
            event = self._malformed(mid, action, "malformed CALLERROR: want [4, id, code, description, {}]")
        self._next_call(now)
        return event

    def _malformed(self, mid: str, action: str, description: str) -> ErrorReceived:
        return ErrorReceived(mid, action, self._wire[ErrorCode.FORMAT_VIOLATION], description, {})

    # ---- outbound ------------------------------------------------------------------------------

    def send_call(self, action: str, payload: dict[str, Any], now: float) -> str:
        """Send (or queue behind the outstanding CALL) a CALL; returns its message id.

        Raises ``RpcQueueFull`` past ``max_queued_calls`` waiting CALLs, and orjson's
        ``JSONEncodeError`` (a TypeError) for a payload JSON cannot carry.
        """
        if self._out_id is not None and len(self._queue) >= self._max_queued:
            raise RpcQueueFull(f"{len(self._queue)} CALLs already queued")
        # uuid4 rather than a counter: ids stay unique across reconnects, so a charger that
        # replays an answer from an earlier connection cannot hit a fresh call.
        mid = uuid.uuid4().hex
        frame = _dumps([_CALL, mid, action, payload])
        if self._out_id is None:
            self._transmit(mid, action, frame, now)
        else:
            self._queue.append((mid, action, frame))
        return mid

    def _transmit(self, mid: str, action: str, frame: bytes, now: float) -> None:
        self._out.append(frame)
        self._out_id = mid
        self._out_action = action
        self._deadline = now + self._call_timeout

    def _next_call(self, now: float) -> None:
        """The outstanding CALL is settled: put the next queued one on the wire."""
        if self._queue:
            self._transmit(*self._queue.popleft(), now)
        else:
            self._out_id = None
            self._out_action = ""
            self._deadline = None

    def send_result(self, message_id: str, payload: dict[str, Any]) -> None:
        """Answer the peer's CALL ``message_id``."""
        if self._unanswerable and message_id in self._unanswerable:
            del self._unanswerable[message_id]
            return
        self._out.append(_dumps([_CALLRESULT, message_id, payload]))

    def send_error(
        self, message_id: str, code: ErrorCode, description: str = "", details: dict[str, Any] | None = None
    ) -> None:
        """Refuse the peer's CALL ``message_id`` with ``code`` spelt for this connection's version."""
        if self._unanswerable and message_id in self._unanswerable:
            del self._unanswerable[message_id]
            return
        self._out.append(encode_error(message_id, self._wire[code], description, details))

    def data_to_send(self) -> list[bytes]:
        """Frames to write, oldest first; each call hands them over once."""
        out = self._out
        if not out:
            return []
        self._out = []
        return out

    # ---- time ----------------------------------------------------------------------------------

    @property
    def outstanding(self) -> str | None:
        """Message id of our CALL on the wire, awaiting its answer."""
        return self._out_id

    def next_deadline(self) -> float | None:
        """When the outstanding CALL times out (same clock as ``now``), or None."""
        return self._deadline

    def expire(self, now: float) -> list[Event]:
        """Time out the outstanding CALL if ``now`` is at or past its deadline."""
        if self._out_id is None or self._deadline is None or now < self._deadline:
            return []
        event = CallTimedOut(self._out_id, self._out_action)
        self._expired.append(self._out_id)
        self._next_call(now)
        return [event]

    def cancel_all(self) -> list[CallTimedOut]:
        """The connection is gone: settle the outstanding CALL and every queued one, in order."""
        events: list[CallTimedOut] = []
        if self._out_id is not None:
            events.append(CallTimedOut(self._out_id, self._out_action))
        events.extend(CallTimedOut(mid, action) for mid, action, _ in self._queue)
        self._queue.clear()
        self._out_id = None
        self._out_action = ""
        self._deadline = None
        return events
