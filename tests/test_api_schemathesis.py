"""Property-based test of the HTTP API against its own OpenAPI document (schemathesis).

For every operation schemathesis generates valid and invalid requests (its positive and
negative modes) and checks the answers: never a 5xx, only documented status codes and
content types, bodies that match the documented schemas, and every 4xx carries a reason
(``{"detail": ...}``). About half the examples aim at objects that exist (a registered
charger, a token, a session), so the 200/204/409 paths run too, not only 404s.

How it runs: schemathesis drives an ASGI app on its own event-loop thread, and the
platform (database engine, services) must live on the loop that serves its requests. So
the app under test is a thin ASGI wrapper whose *lifespan* opens the CSMS with
``open_csms``: it starts on schemathesis' loop when the schema is loaded, and the fixture
shuts it down at the end (which also unregisters its Prometheus collector, so later tests
can open their own CSMS).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.types import Receive, Scope, Send

from chargegrid.app import Csms, open_csms
from chargegrid.core.model import IdToken, Role
from tests.conftest import settings_for

CHARGER = "CP-ST-1"
TOKEN = "RFID-ST-1"

Operation = APIOperation[Any, Any, Any, Any]
Case = schemathesis.Case[Operation]


@dataclass
class World:
    """The CSMS under test and the known objects; ``run`` executes a coroutine on its loop."""

    db_url: str
    csms: Csms | None = None
    loop: asyncio.AbstractEventLoop | None = None
    key: str = ""
    session_id: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        assert self.csms is not None, "the CSMS is not running"
        await self.csms.http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "lifespan.startup"
        try:
            async with open_csms(settings_for(self.db_url), serve_http=False) as csms:
                self.csms, self.loop = csms, asyncio.get_running_loop()
                self.key = await csms.platform.admin.create_api_key(Role.ADMIN, "schemathesis")
                await self.restore()
                session, _ = await csms.platform.transactions.start_v16(
                    CHARGER, connector_id=1, id_tag=TOKEN, meter_start_wh=0, at=datetime.now(UTC)
                )
                assert session.id is not None
                self.session_id = session.id
                await send({"type": "lifespan.startup.complete"})
                assert (await receive())["type"] == "lifespan.shutdown"
                self.csms = None
        except BaseException as exc:
            await send({"type": "lifespan.startup.failed" if self.loop is None else "lifespan.shutdown.failed",
                        "message": repr(exc)})
            raise
        await send({"type": "lifespan.shutdown.complete"})

    async def restore(self) -> None:
        """Bring back the known charger and token (the DELETE operations may remove them)."""
        assert self.csms is not None
        p = self.csms.platform
        if await p.chargers.get(CHARGER) is None:
            await p.chargers.register(CHARGER, "correct-horse-battery-staple")
        if await p.admin.get_token(TOKEN) is None:
            await p.admin.upsert_token(IdToken(token=TOKEN))

    def run(self, coro: Coroutine[Any, Any, None]) -> None:
        assert self.loop is not None
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(db_url=f"sqlite:///{tmp_path / 'chargegrid.db'}")
    try:
        yield w
    finally:
        # Runs the wrapper's lifespan shutdown: open_csms closes on the loop it started on.
        # (schemathesis' pytest plugin also ends ASGI lifespans after every test, which is why
        # these fixtures are per test: a module-scoped CSMS would be closed after the first.)
        schemathesis_asgi.shutdown_lifespans()


@pytest.fixture
def api_schema(world: World) -> BaseSchema:
    # Loading the document starts the app's lifespan, i.e. opens the CSMS.
    return schemathesis.openapi.from_asgi("/openapi.json", world)


# -- known gaps, each self-limiting --------------------------------------------------------
def error_has_reason(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                     case: Case) -> bool | None:
    """The quality bar: a bad request gets a 4xx *with a reason* -- JSON ``{"detail": ...}``."""
    if 400 <= response.status_code < 500:
        assert response.headers.get("content-type", [""])[0].startswith("application/json"), (
            f"{response.status_code} is not JSON: {response.headers.get('content-type')}"
        )
        body = response.json()
        assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"], (
            f"{response.status_code} without a reason: {body!r}"
        )
    return None


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,  # invalid input (schemathesis' negative mode) must get a 4xx
    error_has_reason,
]


def _fuzz(operation: Operation, world: World) -> None:
    names = {p.name for p in operation.path_parameters}
    known = {k: v for k, v in (("charger_id", CHARGER), ("token", TOKEN), ("session_id", world.session_id))
             if k in names}
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    strategies = [operation.as_strategy(mode) for mode in modes]
    if known:  # the same operation aimed at objects that exist: 200/204/409 rather than 404
        strategies += [operation.as_strategy(mode, path_parameters=known) for mode in modes]
    auth = {"Authorization": f"Bearer {world.key}"}

    @given(case=st.one_of(strategies))
    @settings(max_examples=25, derandomize=True, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
    def examples(case: Case) -> None:
        world.run(world.restore())
        case.call_and_validate(headers=auth, checks=CHECKS)

    examples()


def test_api_conforms_to_its_openapi_document(api_schema: BaseSchema, world: World,
                                              subtests: pytest.Subtests) -> None:
    # Driven by hand rather than with schemathesis.pytest.from_fixture(...).parametrize(): in
    # schemathesis 4.32.5 that sets ``request.node._nodeid``, which pytest 9.2 no longer has
    # (AttributeError before any request is made).
    operations = [r.ok() for r in api_schema.exclude(path="/api/v1/events").get_all_operations()  # SSE: endless
                  if isinstance(r, Ok)]
    assert len(operations) >= 25, [op.label for op in operations]
    for operation in operations:
        with subtests.test(msg=operation.label):
            _fuzz(operation, world)


@pytest.mark.parametrize(("method", "path", "path_parameters", "body"), [
    ("GET", "/api/v1/sessions/{session_id}", {"session_id": 2**63}, None),
    ("POST", "/api/v1/chargers/{charger_id}/stop", {"charger_id": CHARGER}, {"session_id": 2**63}),
])
def test_huge_session_id_is_a_4xx(api_schema: BaseSchema, world: World, method: str, path: str,
                                  path_parameters: dict[str, Any], body: dict[str, Any] | None) -> None:
    operation = api_schema[path][method]
    if body is None:
        case = operation.Case(path_parameters=path_parameters)
    else:
        case = operation.Case(path_parameters=path_parameters, body=body)
    response = case.call(headers={"Authorization": f"Bearer {world.key}"})
    assert 400 <= response.status_code < 500 and response.json()["detail"]
