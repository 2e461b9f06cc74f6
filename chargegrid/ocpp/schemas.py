"""Payload validation against the official OCPP JSON schemas shipped by the ``ocpp`` package.

Rules:

1. Two validators per schema, compiled once per (version, action, direction), lazily on first
   use (a charger uses a dozen actions). The verdict comes from jsonschema-rs (compiled Rust:
   ~2 µs for a MeterValues, against ~11 µs for fastjsonschema's generated Python and ~500 µs
   for the ``ocpp`` package's jsonschema path); only a payload it refuses goes through
   fastjsonschema too, whose error (with its ``rule``) picks the CALLERROR code and says what
   is wrong. Both run on the event loop thread: no thread pool. If the two disagree, the
   payload is refused. One difference stays: JSON Schema counts 1.0 as an integer, so
   jsonschema-rs accepts it where fastjsonschema would not; handlers read integers with int().
2. Only names listed from the package's schema directory are ever loaded, so an action string
   from the wire never becomes a file path.
3. Validation never changes the payload: defaults in the schemas are not filled in
   (``use_default=False``), the handlers apply OCPP's documented defaults themselves.
4. A failed check raises ``SchemaViolation`` carrying the CALLERROR code the spec asks for.
   ``validate_*`` on an action with no schema raises ``SchemaViolation(NOT_IMPLEMENTED)``; callers
   that want to answer NotSupported for a known-but-unhandled action ask ``has_request`` first.

``multipleOf``: fastjsonschema (2.22 here) checks a float against a float ``multipleOf`` with
``Decimal(repr(value))``, i.e. on the shortest decimal literal of the value, so 0.3, 1.1 and 16.7
pass ``multipleOf: 0.1`` (jsonschema's float division rejects some of them). A value that is not a
decimal multiple, including float noise such as 0.30000000000000004, is refused as the spec says.
``tests/test_schemas.py`` pins this, so a fastjsonschema upgrade that regresses it fails loudly.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Callable
from typing import Any, Final

import fastjsonschema
import jsonschema_rs
import orjson

from chargegrid.core.model import OcppVersion
from chargegrid.ocpp.rpc import ErrorCode

__all__ = ["SchemaViolation", "Validators", "validators_for"]

_PACKAGES: Final[dict[OcppVersion, str]] = {
    OcppVersion.V16: "ocpp.v16.schemas",
    OcppVersion.V201: "ocpp.v201.schemas",
    OcppVersion.V21: "ocpp.v21.schemas",
}

_RULE_CODES: Final[dict[str, ErrorCode]] = {
    "required": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maxLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMinimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMaximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "format": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
}
# Long enum lists make fastjsonschema's messages long; CALLERROR descriptions stop at 255 anyway.
_MAX_DESCRIPTION: Final = 200

_Check = Callable[[Any], Any]


class SchemaViolation(Exception):
    """A payload the schema refuses; ``code`` is the CALLERROR code to answer with."""

    def __init__(self, code: ErrorCode, description: str) -> None:
        super().__init__(f"{code.value}: {description}")
        self.code = code
        self.description = description


def _schema_files(version: OcppVersion) -> tuple[dict[str, str], dict[str, str]]:
    """Map action -> schema file name, for requests and for responses, from the package listing."""
    requests: dict[str, str] = {}
    responses: dict[str, str] = {}
    for entry in importlib.resources.files(_PACKAGES[version]).iterdir():
        name = entry.name
        if not name.endswith(".json"):
            continue
        stem = name[: -len(".json")]
        if stem.endswith("Response"):
            responses[stem[: -len("Response")]] = name
        elif version.is_2x and stem.endswith("Request"):
            requests[stem[: -len("Request")]] = name
        else:
            # 1.6 names requests by the bare action; 2.1 does the same for SEND-only messages
            # (NotifyPeriodicEventStream), which have no response.
            requests[stem] = name
    return requests, responses


def _load(version: OcppVersion, file_name: str) -> dict[str, Any]:
    text = importlib.resources.files(_PACKAGES[version]).joinpath(file_name).read_bytes()
    schema: dict[str, Any] = orjson.loads(text)
    # The 2.1 schemas carry "$id": "urn:OCPP:...". fastjsonschema resolves "#/definitions/..."
    # against it correctly today, but the ids add nothing offline and a resolver change could
    # make it fetch them; without them every $ref is local to the document.
    schema.pop("$id", None)
    schema.pop("id", None)
    return schema


class Validators:
    """The compiled checks of one OCPP version. Obtain through ``validators_for`` to share the cache."""

    __slots__ = ("_compiled", "_fast", "_requests", "_responses", "version")

    def __init__(self, version: OcppVersion) -> None:
        self.version = version
        self._requests, self._responses = _schema_files(version)
        self._compiled: dict[tuple[str, bool], _Check] = {}
        self._fast: dict[tuple[str, bool], Any] = {}

    def has_request(self, action: str) -> bool:
        """Whether this version defines ``action`` as a request (CALL or 2.1 SEND)."""
        return action in self._requests

    def has_response(self, action: str) -> bool:
        """Whether this version defines a response for ``action``."""
        return action in self._responses

    def validate_request(self, action: str, payload: dict[str, Any]) -> None:
        """Raise ``SchemaViolation`` unless ``payload`` is a valid ``action`` request."""
        fast = self._fast.get((action, True))
        if fast is None:
            fast = self._compile_fast(action, True)
        if not fast.is_valid(payload):
            self._explain(action, True, payload, fast)

    def validate_response(self, action: str, payload: dict[str, Any]) -> None:
        """Raise ``SchemaViolation`` unless ``payload`` is a valid ``action`` response."""
        fast = self._fast.get((action, False))
        if fast is None:
            fast = self._compile_fast(action, False)
        if not fast.is_valid(payload):
            self._explain(action, False, payload, fast)

    def _explain(self, action: str, request: bool, payload: dict[str, Any], fast: Any) -> None:
        """The slow path, for refused payloads only: which rule broke, as a CALLERROR code."""
        check = self._compiled.get((action, request))
        if check is None:
            check = self._compile(action, request)
        try:
            check(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise _violation(exc) from None
        try:  # fastjsonschema found nothing wrong: jsonschema-rs' own reason
            fast.validate(payload)
        except jsonschema_rs.ValidationError as exc:
            raise SchemaViolation(ErrorCode.FORMAT_VIOLATION, _cut(str(exc.message))) from None

    def _file(self, action: str, request: bool) -> str:
        file_name = (self._requests if request else self._responses).get(action)
        if file_name is None:
            kind = "request" if request else "response"
            raise SchemaViolation(
                ErrorCode.NOT_IMPLEMENTED, f"no {self.version.value} {kind} schema for {action[:60]!r}"
            )
        return file_name

    def _compile_fast(self, action: str, request: bool) -> Any:
        schema = _load(self.version, self._file(action, request))
        fast = jsonschema_rs.validator_for(schema, validate_formats=True)
        self._fast[(action, request)] = fast
        return fast

    def _compile(self, action: str, request: bool) -> _Check:
        # Two threads compiling the same schema at once both succeed; the last store wins.
        check: _Check = fastjsonschema.compile(_load(self.version, self._file(action, request)), use_default=False)
        self._compiled[(action, request)] = check
        return check

    def compile_all(self) -> int:
        """Compile every schema now (tests, or a warm-up at startup); returns how many."""
        for action in self._requests:
            if (action, True) not in self._compiled:
                self._compile(action, True)
                self._compile_fast(action, True)
        for action in self._responses:
            if (action, False) not in self._compiled:
                self._compile(action, False)
                self._compile_fast(action, False)
        return len(self._compiled)


def _violation(exc: Any) -> SchemaViolation:
    """Translate fastjsonschema's exception; ``exc.message`` already names the path ("data.x")."""
    return SchemaViolation(_RULE_CODES.get(exc.rule, ErrorCode.FORMAT_VIOLATION), _cut(exc.message))


def _cut(message: str) -> str:
    return message if len(message) <= _MAX_DESCRIPTION else message[: _MAX_DESCRIPTION - 3] + "..."


@functools.cache
def validators_for(version: OcppVersion) -> Validators:
    """The shared ``Validators`` of ``version``: compiled checks live as long as the process."""
    return Validators(version)
