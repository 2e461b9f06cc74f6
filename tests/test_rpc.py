"""The OCPP-J RPC core: exact wire frames for bad input, CALL queueing, timeouts, and a state machine."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from chargegrid.core.model import OcppVersion
from chargegrid.ocpp.rpc import (
    CallReceived,
    CallTimedOut,
    ErrorCode,
    ErrorReceived,
    Event,
    FrameRejected,
    ResultReceived,
    RpcProtocol,
    RpcQueueFull,
    encode_result,
    wire_code,
)

V16 = OcppVersion.V16
V201 = OcppVersion.V201
V21 = OcppVersion.V21


def wire(p: RpcProtocol) -> list[list[Any]]:
    return [orjson.loads(frame) for frame in p.data_to_send()]


def idle(p: RpcProtocol) -> bool:
    # A function rather than inline asserts: mypy would keep a property narrowed across calls.
    return p.outstanding is None and p.next_deadline() is None


# ---- error code spelling ----------------------------------------------------------------------


def test_wire_codes_2x_are_enum_values() -> None:
    for version in (V201, V21):
        for code in ErrorCode:
            assert wire_code(code, version) == code.value


def test_wire_codes_16() -> None:
    expected = {
        ErrorCode.FORMAT_VIOLATION: "FormationViolation",
        ErrorCode.GENERIC_ERROR: "GenericError",
        ErrorCode.INTERNAL_ERROR: "InternalError",
        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED: "FormationViolation",
        ErrorCode.NOT_IMPLEMENTED: "NotImplemented",
        ErrorCode.NOT_SUPPORTED: "NotSupported",
        ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
        ErrorCode.PROPERTY_CONSTRAINT_VIOLATION: "PropertyConstraintViolation",
        ErrorCode.PROTOCOL_ERROR: "ProtocolError",
        ErrorCode.RPC_FRAMEWORK_ERROR: "FormationViolation",
        ErrorCode.SECURITY_ERROR: "SecurityError",
        ErrorCode.TYPE_CONSTRAINT_VIOLATION: "TypeConstraintViolation",
    }
    assert {code: wire_code(code, V16) for code in ErrorCode} == expected


# ---- well-formed traffic ----------------------------------------------------------------------


@pytest.mark.parametrize("version", [V16, V201, V21])
def test_call_roundtrip(version: OcppVersion) -> None:
    p = RpcProtocol(version)
    event = p.receive_text('[2,"m1","Heartbeat",{}]', 0.0)
    assert event == CallReceived("m1", "Heartbeat", {})
    assert p.receive_text(b'[2,"m2","Heartbeat",{}]', 0.0) == CallReceived("m2", "Heartbeat", {})
    p.send_result("m1", {"currentTime": "2024-01-01T00:00:00Z"})
    p.send_error("m2", ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION, "missing x", {"field": "x"})
    occurrence = "OccurenceConstraintViolation" if version is V16 else "OccurrenceConstraintViolation"
    assert wire(p) == [
        [3, "m1", {"currentTime": "2024-01-01T00:00:00Z"}],
        [4, "m2", occurrence, "missing x", {"field": "x"}],
    ]
    assert p.data_to_send() == []


def test_encode_result_matches_send_result() -> None:
    p = RpcProtocol(V16)
    p.send_result("id", {"a": [1, 2]})
    assert p.data_to_send() == [encode_result("id", {"a": [1, 2]})] == [b'[3,"id",{"a":[1,2]}]']


def test_send_error_description_is_capped() -> None:
    p = RpcProtocol(V201)
    p.send_error("x", ErrorCode.GENERIC_ERROR, "d" * 1000)
    [[_, _, _, description, details]] = wire(p)
    assert len(description) == 255
    assert details == {}


def test_message_id_of_36_characters_is_fine() -> None:
    p = RpcProtocol(V201)
    mid = "a" * 36
    assert p.receive_text(f'[2,"{mid}","Heartbeat",{{}}]', 0.0) == CallReceived(mid, "Heartbeat", {})
    assert p.data_to_send() == []


# ---- bad input: exact CALLERROR frames -------------------------------------------------------

FORMAT = {V16: "FormationViolation", V201: "FormatViolation"}
FRAMEWORK = {V16: "FormationViolation", V201: "RpcFrameworkError"}
MSGTYPE = {V16: "FormationViolation", V201: "MessageTypeNotSupported"}
LONG_ID = "x" * 37

BAD_FRAMES: list[tuple[str, str, dict[OcppVersion, str], ErrorCode, str]] = [
    # (frame, id in the CALLERROR, wire code per version, neutral code, description)
    ('[2,"m1","Heartbeat",{}', "-1", FRAMEWORK, ErrorCode.RPC_FRAMEWORK_ERROR, "frame is not valid JSON"),
    ("", "-1", FRAMEWORK, ErrorCode.RPC_FRAMEWORK_ERROR, "frame is not valid JSON"),
    ("[NaN]", "-1", FRAMEWORK, ErrorCode.RPC_FRAMEWORK_ERROR, "frame is not valid JSON"),
    ('{"a":1}', "-1", FORMAT, ErrorCode.FORMAT_VIOLATION, "frame is not a non-empty JSON array"),
    ("[]", "-1", FORMAT, ErrorCode.FORMAT_VIOLATION, "frame is not a non-empty JSON array"),
    ('"text"', "-1", FORMAT, ErrorCode.FORMAT_VIOLATION, "frame is not a non-empty JSON array"),
    (
        '["2","m1","Heartbeat",{}]',
        "m1",
        FORMAT,
        ErrorCode.FORMAT_VIOLATION,
        "message type id is not an integer",
    ),
    (
        '[true,"m1","Heartbeat",{}]',
        "m1",
        FORMAT,
        ErrorCode.FORMAT_VIOLATION,
        "message type id is not an integer",
    ),
    (
        '[2.0,"m1","Heartbeat",{}]',
        "m1",
        FORMAT,
        ErrorCode.FORMAT_VIOLATION,
        "message type id is not an integer",
    ),
    ('[2,"m1","Heartbeat"]', "m1", FORMAT, ErrorCode.FORMAT_VIOLATION, "CALL must have 4 elements, got 3"),
    (
        '[2,"m1","Heartbeat",{},{}]',
        "m1",
        FORMAT,
        ErrorCode.FORMAT_VIOLATION,
        "CALL must have 4 elements, got 5",
    ),
    ("[2]", "-1", FORMAT, ErrorCode.FORMAT_VIOLATION, "CALL must have 4 elements, got 1"),
    ('[2,17,"Heartbeat",{}]', "-1", FORMAT, ErrorCode.FORMAT_VIOLATION, "message id is not a string"),
    ('[2,null,"Heartbeat",{}]', "-1", FORMAT, ErrorCode.FORMAT_VIOLATION, "message id is not a string"),
    (
        f'[2,"{LONG_ID}","Heartbeat",{{}}]',
        LONG_ID,
        FORMAT,
        ErrorCode.FORMAT_VIOLATION,
        "message id longer than 36 characters",
    ),
    ('[2,"m1",5,{}]', "m1", FORMAT, ErrorCode.FORMAT_VIOLATION, "action is not a string"),
    (
        '[2,"m1","Heartbeat",[]]',
        "m1",
        FORMAT,
        ErrorCode.FORMAT_VIOLATION,
        "CALL payload is not a JSON object",
    ),
    (
        '[2,"m1","Heartbeat",null]',
        "m1",
        FORMAT,
        ErrorCode.FORMAT_VIOLATION,
        "CALL payload is not a JSON object",
    ),
    (
        '[7,"m1","Heartbeat",{}]',
        "m1",
        MSGTYPE,
        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
        "message type id 7 not supported",
    ),
    ("[0]", "-1", MSGTYPE, ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, "message type id 0 not supported"),
    # CALLRESULTERROR and SEND exist only from 2.1 on.
    (
        '[5,"m1","FormatViolation","",{}]',
        "m1",
        MSGTYPE,
        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
        "message type id 5 not supported",
    ),
    (
        '[6,"m1","NotifyPeriodicEventStream",{}]',
        "m1",
        MSGTYPE,
        ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED,
        "message type id 6 not supported",
    ),
]


@pytest.mark.parametrize("version", [V16, V201])
@pytest.mark.parametrize(("frame", "reply_id", "codes", "code", "description"), BAD_FRAMES)
def test_bad_frame_gets_exact_callerror(
    version: OcppVersion,
    frame: str,
    reply_id: str,
    codes: dict[OcppVersion, str],
    code: ErrorCode,
    description: str,
) -> None:
    p = RpcProtocol(version)
    assert p.receive_text(frame, 0.0) == FrameRejected(description, code)
    assert wire(p) == [[4, reply_id, codes[version], description, {}]]
    # The connection stays usable.
    assert p.receive_text('[2,"ok","Heartbeat",{}]', 1.0) == CallReceived("ok", "Heartbeat", {})


NEVER_ANSWERED = [
    '[3,"nobody",{}]',
    '[4,"nobody","GenericError","",{}]',
    # Malformed answers are not answered either: an answer is never answered.
    "[3]",
    "[4]",
    "[3,17,{}]",
    '[4,null,"GenericError","",{}]',
    '[4,"nobody"]',
    '[4,"nobody",1,2,3,4,5]',
    '[3,"nobody",[]]',
]


@pytest.mark.parametrize("version", [V16, V201, V21])
@pytest.mark.parametrize("frame", NEVER_ANSWERED)
def test_answers_to_unknown_ids_are_rejected_silently(version: OcppVersion, frame: str) -> None:
    p = RpcProtocol(version)
    mid = p.send_call("Reset", {"type": "Soft"}, 0.0)
    p.data_to_send()
    event = p.receive_text(frame, 1.0)
    assert isinstance(event, FrameRejected)
    assert event.code is None
    assert p.data_to_send() == []
    assert p.outstanding == mid


# ---- our CALLs ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [V16, V201])
def test_result_and_error_settle_the_call(version: OcppVersion) -> None:
    p = RpcProtocol(version)
    a = p.send_call("Reset", {"type": "Soft"}, 0.0)
    assert wire(p) == [[2, a, "Reset", {"type": "Soft"}]]
    assert p.outstanding == a
    assert p.receive_text(f'[3,"{a}",{{"status":"Accepted"}}]', 1.0) == ResultReceived(
        a, "Reset", {"status": "Accepted"}
    )
    assert idle(p)
    b = p.send_call("ClearCache", {}, 2.0)
    assert a != b
    p.data_to_send()
    assert p.receive_text(f'[4,"{b}","NotSupported","nope",{{"x":1}}]', 3.0) == ErrorReceived(
        b, "ClearCache", "NotSupported", "nope", {"x": 1}
    )
    assert p.data_to_send() == []


def test_callerror_without_details_is_accepted() -> None:
    p = RpcProtocol(V16)
    a = p.send_call("Reset", {"type": "Soft"}, 0.0)
    assert p.receive_text(f'[4,"{a}","GenericError","boom"]', 1.0) == ErrorReceived(
        a, "Reset", "GenericError", "boom", {}
    )
    b = p.send_call("Reset", {"type": "Soft"}, 0.0)
    assert p.receive_text(f'[4,"{b}","GenericError",null,null]', 1.0) == ErrorReceived(
        b, "Reset", "GenericError", "", {}
    )


@pytest.mark.parametrize(("version", "code"), [(V16, "FormationViolation"), (V201, "FormatViolation")])
@pytest.mark.parametrize("template", ['[3,"{id}",[]]', '[3,"{id}"]', '[4,"{id}",5,"",{{}}]', '[4,"{id}"]'])
def test_malformed_answer_to_outstanding_call_settles_it(
    version: OcppVersion, code: str, template: str
) -> None:
    p = RpcProtocol(version)
    a = p.send_call("Reset", {"type": "Soft"}, 0.0)
    b = p.send_call("ClearCache", {}, 0.0)
    p.data_to_send()
    event = p.receive_text(template.format(id=a), 1.0)
    assert isinstance(event, ErrorReceived)
    assert (event.message_id, event.action, event.code) == (a, "Reset", code)
    assert event.description.startswith("malformed")
    # No CALLERROR goes back; the queued CALL does.
    assert wire(p) == [[2, b, "ClearCache", {}]]


def test_calls_queue_behind_the_outstanding_one() -> None:
    p = RpcProtocol(V201, call_timeout=10.0)
    a = p.send_call("A", {}, 0.0)
    b = p.send_call("B", {}, 1.0)
    c = p.send_call("C", {}, 2.0)
    assert wire(p) == [[2, a, "A", {}]]
    assert p.next_deadline() == 10.0
    assert p.receive_text(f'[3,"{a}",{{}}]', 5.0) == ResultReceived(a, "A", {})
    assert wire(p) == [[2, b, "B", {}]]
    assert p.outstanding == b
    assert p.next_deadline() == 15.0  # B's timeout starts when it goes on the wire
    assert p.receive_text(f'[4,"{b}","GenericError","",{{}}]', 6.0) == ErrorReceived(
        b, "B", "GenericError", "", {}
    )
    assert wire(p) == [[2, c, "C", {}]]
    assert p.receive_text(f'[3,"{c}",{{}}]', 7.0) == ResultReceived(c, "C", {})
    assert p.data_to_send() == []
    assert p.outstanding is None


def test_queue_limit() -> None:
    p = RpcProtocol(V16, max_queued_calls=2)
    p.send_call("A", {}, 0.0)
    p.send_call("B", {}, 0.0)
    p.send_call("C", {}, 0.0)
    with pytest.raises(RpcQueueFull):
        p.send_call("D", {}, 0.0)
    assert len(p.cancel_all()) == 3


def test_unencodable_payload_raises_for_the_caller_and_leaves_no_trace() -> None:
    p = RpcProtocol(V16)
    with pytest.raises(TypeError):
        p.send_call("A", {"x": object()}, 0.0)
    assert p.outstanding is None
    assert p.data_to_send() == []


def test_timeout_sends_next_and_ignores_late_answer() -> None:
    p = RpcProtocol(V16, call_timeout=30.0)
    a = p.send_call("A", {}, 0.0)
    b = p.send_call("B", {}, 0.0)
    p.data_to_send()
    assert p.next_deadline() == 30.0
    assert p.expire(29.9) == []
    assert p.expire(30.0) == [CallTimedOut(a, "A")]
    assert wire(p) == [[2, b, "B", {}]]
    assert p.next_deadline() == 60.0
    assert p.expire(30.0) == []
    # A's answer arrives late: dropped silently, B is still outstanding.
    assert p.receive_text(f'[3,"{a}",{{}}]', 31.0) is None
    assert p.receive_text(f'[4,"{a}","GenericError","",{{}}]', 31.0) is None
    assert p.data_to_send() == []
    assert p.outstanding == b
    assert p.expire(60.0) == [CallTimedOut(b, "B")]
    assert idle(p)
    assert p.expire(1000.0) == []


def test_cancel_all_settles_everything_in_order() -> None:
    p = RpcProtocol(V201)
    ids = [p.send_call(action, {}, 0.0) for action in ("A", "B", "C")]
    assert p.cancel_all() == [CallTimedOut(ids[0], "A"), CallTimedOut(ids[1], "B"), CallTimedOut(ids[2], "C")]
    assert idle(p)
    assert p.cancel_all() == []
    d = p.send_call("D", {}, 5.0)  # nothing outstanding any more: goes straight out
    assert wire(p)[-1] == [2, d, "D", {}]


# ---- OCPP 2.1 additions -----------------------------------------------------------------------


def test_v21_send_is_never_answered() -> None:
    p = RpcProtocol(V21)
    event = p.receive_text(
        '[6,"s1","NotifyPeriodicEventStream",{"id":1,"pending":0,"basetime":"x","data":[]}]', 0
    )
    assert isinstance(event, CallReceived)
    assert event.unconfirmed
    assert (event.message_id, event.action) == ("s1", "NotifyPeriodicEventStream")
    p.send_result("s1", {})
    assert p.data_to_send() == []
    # Once dropped, the id is forgotten: a later CALL reusing it is answered normally.
    p.receive_text('[2,"s1","Heartbeat",{}]', 0)
    p.send_result("s1", {})
    assert wire(p) == [[3, "s1", {}]]


def test_v21_send_forgotten_when_a_call_reuses_its_id() -> None:
    p = RpcProtocol(V21)
    p.receive_text('[6,"s1","NotifyPeriodicEventStream",{}]', 0)
    assert p.receive_text('[2,"s1","Heartbeat",{}]', 0) == CallReceived("s1", "Heartbeat", {})
    p.send_error("s1", ErrorCode.NOT_SUPPORTED)
    assert wire(p) == [[4, "s1", "NotSupported", "", {}]]


def test_v21_remembered_send_ids_are_bounded() -> None:
    p = RpcProtocol(V21)
    for i in range(200):
        p.receive_text(f'[6,"s{i}","NotifyPeriodicEventStream",{{}}]', 0)
    p.send_result("s0", {})  # long forgotten: goes out
    p.send_result("s199", {})  # remembered: dropped
    assert wire(p) == [[3, "s0", {}]]


@pytest.mark.parametrize("frame", ['[6,"s1","NotifyPeriodicEventStream"]', '[6,5,"X",{}]', '[6,"s1","X",[]]'])
def test_v21_malformed_send_gets_no_reply(frame: str) -> None:
    p = RpcProtocol(V21)
    event = p.receive_text(frame, 0)
    assert isinstance(event, FrameRejected)
    assert event.code is None
    assert p.data_to_send() == []


def test_v21_callresulterror_gets_no_reply() -> None:
    p = RpcProtocol(V21)
    event = p.receive_text('[5,"r1","FormatViolation","bad result",{}]', 0)
    assert event == FrameRejected("peer rejected our CALLRESULT 'r1'", None)
    assert p.data_to_send() == []


def test_v21_unknown_type_uses_2x_code() -> None:
    p = RpcProtocol(V21)
    p.receive_text('[9,"m1"]', 0)
    assert wire(p) == [[4, "m1", "MessageTypeNotSupported", "message type id 9 not supported", {}]]


# ---- fuzzing --------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
frame_like = st.tuples(st.integers(-1, 8), st.lists(json_values, max_size=5)).map(
    lambda t: orjson.dumps([t[0], *t[1]])
)


def _check_total(p: RpcProtocol, data: str | bytes) -> None:
    event = p.receive_text(data, 0.0)
    assert event is None or isinstance(event, CallReceived | ResultReceived | ErrorReceived | FrameRejected)
    for frame in p.data_to_send():
        decoded = orjson.loads(frame)
        assert isinstance(decoded, list)
        assert decoded[0] == 4
        assert isinstance(event, FrameRejected)
        assert event.code is not None


@pytest.mark.parametrize("version", [V16, V201, V21])
@given(data=st.text() | st.binary() | json_values.map(orjson.dumps) | frame_like)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_receive_text_never_raises(version: OcppVersion, data: str | bytes) -> None:
    p = RpcProtocol(version)
    p.send_call("Reset", {"type": "Soft"}, 0.0)
    p.data_to_send()
    _check_total(p, data)


class RpcMachine(RuleBasedStateMachine):
    """The charger side as an oracle: it sees only the frames we write."""

    def __init__(self) -> None:
        super().__init__()
        self.p = RpcProtocol(V201, call_timeout=10.0, max_queued_calls=3)
        self.now = 0.0
        self.live: str | None = None  # CALL on the wire, neither answered nor timed out
        self.timed_out: list[str] = []  # the charger may still answer these
        self.issued: set[str] = set()
        self.outcomes: dict[str, int] = {}
        self.queued = 0

    def settle(self, events: list[Event | None]) -> None:
        for event in events:
            if isinstance(event, ResultReceived | ErrorReceived | CallTimedOut):
                assert event.message_id in self.issued
                self.outcomes[event.message_id] = self.outcomes.get(event.message_id, 0) + 1
                if event.message_id == self.live:
                    self.live = None
                if isinstance(event, CallTimedOut):
                    self.timed_out.append(event.message_id)
        self.drain()

    def drain(self) -> None:
        for frame in self.p.data_to_send():
            msg = orjson.loads(frame)
            assert isinstance(msg, list)
            assert msg[0] in (2, 3, 4)
            if msg[0] == 2:
                assert self.live is None, "two CALLs on the wire at once"
                self.live = msg[1]
                self.queued -= 1

    @rule(action=st.sampled_from(["Reset", "ClearCache", "TriggerMessage"]))
    def send_call(self, action: str) -> None:
        try:
            mid = self.p.send_call(action, {}, self.now)
        except RpcQueueFull:
            assert self.queued == 3  # three waiting behind the outstanding one
            return
        assert mid not in self.issued
        self.issued.add(mid)
        self.queued += 1
        self.drain()

    @precondition(lambda self: self.live is not None)
    @rule(kind=st.sampled_from(["result", "error", "malformed"]))
    def answer(self, kind: str) -> None:
        mid = self.live
        frame = {
            "result": f'[3,"{mid}",{{}}]',
            "error": f'[4,"{mid}","GenericError","",{{}}]',
            "malformed": f'[3,"{mid}"]',
        }[kind]
        event = self.p.receive_text(frame, self.now)
        assert isinstance(event, ResultReceived if kind == "result" else ErrorReceived)
        assert event.message_id == mid
        self.settle([event])

    @precondition(lambda self: bool(self.timed_out))
    @rule(data=st.data())
    def late_answer(self, data: st.DataObject) -> None:
        mid = data.draw(st.sampled_from(self.timed_out))
        event = self.p.receive_text(f'[3,"{mid}",{{}}]', self.now)
        # Recent ones are recognised; very old ones count as unknown. Never settled twice, never answered.
        assert event is None or (isinstance(event, FrameRejected) and event.code is None)
        assert self.p.data_to_send() == []

    @rule(data=st.text(max_size=30) | frame_like)
    def garbage(self, data: str | bytes) -> None:
        event = self.p.receive_text(data, self.now)
        assert not isinstance(event, ResultReceived | ErrorReceived)  # ids are unguessable
        for frame in self.p.data_to_send():
            assert orjson.loads(frame)[0] == 4

    @rule()
    def peer_call(self) -> None:
        event = self.p.receive_text('[2,"c1","Heartbeat",{}]', self.now)
        assert event == CallReceived("c1", "Heartbeat", {})
        self.p.send_result("c1", {"currentTime": "2024-01-01T00:00:00Z"})
        self.drain()

    @rule(dt=st.floats(0.0, 15.0))
    def tick(self, dt: float) -> None:
        self.now += dt
        deadline = self.p.next_deadline()
        events = self.p.expire(self.now)
        assert len(events) == (1 if deadline is not None and self.now >= deadline else 0)
        self.settle(list(events))

    @rule()
    def disconnect(self) -> None:
        self.settle(list(self.p.cancel_all()))
        self.queued = 0
        assert self.live is None

    @invariant()
    def outstanding_matches_wire(self) -> None:
        assert self.p.outstanding == self.live
        assert (self.p.next_deadline() is None) == (self.live is None)
        assert all(count == 1 for count in self.outcomes.values())

    def teardown(self) -> None:
        self.settle(list(self.p.cancel_all()))
        assert self.outcomes == dict.fromkeys(self.issued, 1)


TestRpcMachine = RpcMachine.TestCase
TestRpcMachine.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
