"""The operators' HTTP API.

Rules: every route needs an API key (``Authorization: Bearer KEY``, ``X-API-Key: KEY`` or the
dashboard's ``chargegrid_key`` cookie); viewers read, operators also command chargers, admins
also manage chargers, tokens and keys. Errors are JSON ``{"detail": reason}``: 401/403 for
keys, 404 for unknown things, 409 for a charger that is not connected, 422 for a bad body or
a command the charger's OCPP version cannot express, 502 when the charger answers with an
error, 504 when it does not answer in time.
"""


import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chargegrid import __version__
from chargegrid.api import models as m
from chargegrid.core import commands as c
from chargegrid.core.model import Charger, ConnectorStatus, IdToken, MeterSample, Role, Session
from chargegrid.services.platform import Platform
from chargegrid.services.ports import ChargerOffline, CommandRejected, CommandTimeout

COOKIE = "chargegrid_key"


def _connector(st: ConnectorStatus) -> m.ConnectorOut:
    return m.ConnectorOut(
        evse_id=st.evse_id,
        connector_id=st.connector_id,
        status=st.status,
        state=st.state.value,
        error_code=st.error_code,
        updated_at=st.updated_at,
    )


def charger_out(p: Platform, stored: Charger) -> m.ChargerOut:
    ch = p.chargers.with_live_state(stored)
    version = p.gateway.version_of(ch.id) or ch.ocpp_version
    return m.ChargerOut(
        id=ch.id,
        connected=p.gateway.is_connected(ch.id),
        ocpp_version=version.value if version else None,
        vendor=ch.vendor,
        model=ch.model,
        serial_number=ch.serial_number,
        firmware_version=ch.firmware_version,
        registered_at=ch.registered_at,
        last_boot_at=ch.last_boot_at,
        last_seen_at=ch.last_seen_at,
        connectors=[_connector(s) for s in ch.connectors],
    )


def session_out(s: Session, samples: list[MeterSample] | None = None) -> m.SessionOut:
    return m.SessionOut(
        id=s.id,
        charger_id=s.charger_id,
        evse_id=s.evse_id,
        connector_id=s.connector_id,
        transaction_id=s.transaction_id,
        ocpp_version=s.ocpp_version.value,
        id_token=s.id_token,
        status=s.status.value,
        started_at=s.started_at,
        stopped_at=s.stopped_at,
        meter_start_wh=s.meter_start_wh,
        meter_last_wh=s.meter_last_wh,
        energy_wh=s.energy_wh,
        power_w=s.power_w,
        soc_percent=s.soc_percent,
        stop_reason=s.stop_reason,
        reservation_id=s.reservation_id,
        meter_values=None
        if samples is None
        else [
            m.MeterValueOut(
                timestamp=x.timestamp,
                values=[
                    {k: v for k, v in (("measurand", sv.measurand), ("value", sv.value), ("unit", sv.unit),
                                       ("phase", sv.phase), ("location", sv.location), ("context", sv.context))
                     if v is not None}
                    for sv in x.values
                ],
            )
            for x in samples
        ],
    )


def _token_out(t: IdToken) -> m.TokenOut:
    return m.TokenOut(token=t.token, type=t.type, status=t.status, expires_at=t.expires_at)


def _problem(description: str) -> dict[str, Any]:
    return {"model": m.Problem, "description": description}


# Declared on every /api/v1 route, so clients (and generated SDKs) know the one error shape.
COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _problem("The body is not valid JSON"),
    401: _problem("Missing, unknown or revoked API key"),
    403: _problem("The key's role may not do this"),
    422: _problem("The request does not fit the schema, or asks what cannot be done"),
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _problem("No such object")}
COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    409: _problem("The charger is not connected"),
    502: _problem("The charger answered with a CALLERROR"),
    504: _problem("The charger did not answer in time"),
}


def _where(loc: Any) -> str:
    return ".".join(str(x) for x in loc if x != "body") or "body"


def create_api(p: Platform, *, ready: Callable[[], bool] = lambda: True) -> FastAPI:
    app = FastAPI(
        title="chargegrid",
        version=__version__,
        description="Central system (CSMS) API: chargers, sessions, ID tokens, commands, live events.",
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """Schema errors in the same shape as every other error: ``detail`` is a sentence."""
        errors = [
            {"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    async def presented_role(request: Request) -> Role:
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization")
        if key is None and auth and auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
        if key is None:
            key = request.cookies.get(COOKIE)
        if not key:
            raise HTTPException(401, "missing API key: send 'Authorization: Bearer KEY' or 'X-API-Key: KEY'",
                                headers={"WWW-Authenticate": "Bearer"})
        role = await p.admin.role_for_key(key)
        if role is None:
            raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        return role

    def need(check: Callable[[Role], bool], what: str) -> Callable[[Role], Awaitable[Role]]:
        async def dep(role: Annotated[Role, Depends(presented_role)]) -> Role:
            if not check(role):
                raise HTTPException(403, f"role '{role.value}' may not {what}")
            return role

        return dep

    viewer = Depends(presented_role)
    operator = Depends(need(Role.may_command, "send commands to chargers"))
    admin = Depends(need(Role.may_administer, "administer chargers, tokens and keys"))

    api = APIRouter(prefix="/api/v1", responses=COMMON_ERRORS)

    # -- chargers ---------------------------------------------------------------------------
    @api.get("/chargers", dependencies=[viewer], tags=["chargers"])
    async def list_chargers() -> list[m.ChargerOut]:
        return [charger_out(p, ch) for ch in await p.chargers.list()]

    @api.post("/chargers", dependencies=[admin], status_code=201, tags=["chargers"])
    async def add_charger(body: m.ChargerIn) -> m.ChargerOut:
        await p.chargers.register(body.id, body.password)
        ch = await p.chargers.get(body.id)
        assert ch is not None
        return charger_out(p, ch)

    async def _charger(charger_id: str) -> Charger:
        ch = await p.chargers.get(charger_id)
        if ch is None:
            raise HTTPException(404, f"no charger {charger_id!r}")
        return ch

    @api.get("/chargers/{charger_id}", dependencies=[viewer], tags=["chargers"], responses=NOT_FOUND)
    async def get_charger(charger_id: str) -> m.ChargerOut:
        return charger_out(p, await _charger(charger_id))

    @api.delete("/chargers/{charger_id}", dependencies=[admin], status_code=204, tags=["chargers"], responses=NOT_FOUND)
    async def delete_charger(charger_id: str) -> Response:
        if not await p.chargers.unregister(charger_id):
            raise HTTPException(404, f"no charger {charger_id!r}")
        return Response(status_code=204)

    @api.get("/chargers/{charger_id}/messages", dependencies=[viewer], tags=["chargers"], responses=NOT_FOUND)
    async def charger_messages(
        charger_id: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[m.MessageOut]:
        await _charger(charger_id)
        return [
            m.MessageOut(at=datetime.fromtimestamp(e["at"], UTC), direction=e["direction"], frame=e["frame"])
            for e in p.gateway.message_log(charger_id, limit)
        ]

    # -- commands ----------------------------------------------------------------------------
    Timeout = Annotated[float | None, Query(gt=0, le=300, description="seconds to wait for the charger")]

    async def run(charger_id: str, command: c.Command, timeout: float | None) -> m.CommandOut:
        await _charger(charger_id)
        try:
            result = await p.commands.send(charger_id, command, timeout)
        except ChargerOffline:
            raise HTTPException(409, f"charger {charger_id!r} is not connected") from None
        except CommandTimeout as exc:
            raise HTTPException(504, str(exc)) from None
        except CommandRejected as exc:
            if exc.from_charger:
                raise HTTPException(502, f"charger answered {exc.code}: {exc.description}") from None
            raise HTTPException(422, f"{exc.code}: {exc.description}") from None
        return m.CommandOut(charger_id=charger_id, action=result.action, status=result.status, response=result.payload)

    cmd = {"dependencies": [operator], "tags": ["commands"], "responses": COMMAND_ERRORS}

    @api.post("/chargers/{charger_id}/start", **cmd)  # type: ignore[arg-type]
    async def remote_start(charger_id: str, body: m.RemoteStartIn, timeout: Timeout = None) -> m.CommandOut:
        return await run(
            charger_id, c.RemoteStart(id_token=body.id_token, evse_id=body.evse_id, connector_id=body.connector_id),
            timeout,
        )

    @api.post("/chargers/{charger_id}/stop", **cmd)  # type: ignore[arg-type]
    async def remote_stop(charger_id: str, body: m.RemoteStopIn, timeout: Timeout = None) -> m.CommandOut:
        tx = body.transaction_id
        if tx is None and body.session_id is not None:
            s = await p.transactions.get_session(body.session_id)
            if s is None or s.charger_id != charger_id:
                raise HTTPException(404, f"no session {body.session_id} on {charger_id!r}")
            tx = s.transaction_id
        if tx is None:
            raise HTTPException(422, "give transaction_id or session_id")
        return await run(charger_id, c.RemoteStop(transaction_id=tx), timeout)

    @api.post("/chargers/{charger_id}/reset", **cmd)  # type: ignore[arg-type]
    async def reset(charger_id: str, body: m.ResetIn, timeout: Timeout = None) -> m.CommandOut:
        return await run(charger_id, c.Reset(hard=body.type == "hard"), timeout)

    @api.post("/chargers/{charger_id}/availability", **cmd)  # type: ignore[arg-type]
    async def availability(charger_id: str, body: m.AvailabilityIn, timeout: Timeout = None) -> m.CommandOut:
        return await run(
            charger_id,
            c.ChangeAvailability(operative=body.operative, evse_id=body.evse_id, connector_id=body.connector_id),
            timeout,
        )

    @api.post("/chargers/{charger_id}/unlock", **cmd)  # type: ignore[arg-type]
    async def unlock(charger_id: str, body: m.UnlockIn, timeout: Timeout = None) -> m.CommandOut:
        return await run(charger_id, c.UnlockConnector(evse_id=body.evse_id, connector_id=body.connector_id), timeout)

    @api.post("/chargers/{charger_id}/trigger", **cmd)  # type: ignore[arg-type]
    async def trigger(charger_id: str, body: m.TriggerIn, timeout: Timeout = None) -> m.CommandOut:
        return await run(
            charger_id,
            c.TriggerMessage(message=body.message, evse_id=body.evse_id, connector_id=body.connector_id),
            timeout,
        )

    @api.post("/chargers/{charger_id}/configuration/get", **cmd)  # type: ignore[arg-type]
    async def get_configuration(
        charger_id: str, body: m.GetConfigurationIn, timeout: Timeout = None
    ) -> m.CommandOut:
        return await run(charger_id, c.GetConfiguration(keys=tuple(body.keys)), timeout)

    @api.post("/chargers/{charger_id}/configuration/change", **cmd)  # type: ignore[arg-type]
    async def change_configuration(
        charger_id: str, body: m.ChangeConfigurationIn, timeout: Timeout = None
    ) -> m.CommandOut:
        return await run(charger_id, c.ChangeConfiguration(key=body.key, value=body.value), timeout)

    def _ref(v: m.VariableIn) -> c.VariableRef:
        return c.VariableRef(
            component=v.component, variable=v.variable, instance=v.instance, evse_id=v.evse_id,
            attribute_type=v.attribute_type,
        )

    @api.post("/chargers/{charger_id}/variables/get", **cmd)  # type: ignore[arg-type]
    async def get_variables(charger_id: str, body: m.GetVariablesIn, timeout: Timeout = None) -> m.CommandOut:
        return await run(charger_id, c.GetVariables(variables=tuple(_ref(v) for v in body.variables)), timeout)

    @api.post("/chargers/{charger_id}/variables/set", **cmd)  # type: ignore[arg-type]
    async def set_variables(charger_id: str, body: m.SetVariablesIn, timeout: Timeout = None) -> m.CommandOut:
        return await run(
            charger_id, c.SetVariables(values=tuple((_ref(v), v.value) for v in body.values)), timeout
        )

    @api.post("/chargers/{charger_id}/firmware", **cmd)  # type: ignore[arg-type]
    async def update_firmware(charger_id: str, body: m.FirmwareIn, timeout: Timeout = None) -> m.CommandOut:
        at = body.retrieve_at or p.clock()
        if at.tzinfo is None:
            raise HTTPException(422, "retrieve_at needs a time zone (e.g. 2026-01-01T00:00:00Z)")
        return await run(
            charger_id,
            c.UpdateFirmware(
                location=body.location, retrieve_at=at, retries=body.retries, retry_interval_s=body.retry_interval_s
            ),
            timeout,
        )

    # -- sessions ----------------------------------------------------------------------------
    @api.get("/sessions", dependencies=[viewer], tags=["sessions"])
    async def list_sessions(
        active: bool | None = None,
        charger_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    ) -> list[m.SessionOut]:
        rows = await p.transactions.list_sessions(active=active, charger_id=charger_id, limit=limit, offset=offset)
        return [session_out(s) for s in rows]

    @api.get("/sessions/{session_id}", dependencies=[viewer], tags=["sessions"], responses=NOT_FOUND)
    async def get_session(
        session_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
        meter_values: Annotated[int, Query(ge=0, le=10000)] = 1000,
    ) -> m.SessionOut:
        s = await p.transactions.get_session(session_id)
        if s is None:
            raise HTTPException(404, f"no session {session_id}")
        samples = await p.transactions.samples_of(s, meter_values) if meter_values else []
        return session_out(s, samples)

    # -- tokens -----------------------------------------------------------------------------
    @api.get("/tokens", dependencies=[viewer], tags=["tokens"])
    async def list_tokens() -> list[m.TokenOut]:
        return [_token_out(t) for t in await p.admin.list_tokens()]

    @api.get("/tokens/{token}", dependencies=[viewer], tags=["tokens"], responses=NOT_FOUND)
    async def get_token(token: str) -> m.TokenOut:
        t = await p.admin.get_token(token)
        if t is None:
            raise HTTPException(404, f"no token {token!r}")
        return _token_out(t)

    @api.put("/tokens/{token}", dependencies=[admin], tags=["tokens"])
    async def put_token(token: str, body: m.TokenIn) -> m.TokenOut:
        if not token or len(token) > 255:
            raise HTTPException(422, "token must be 1-255 characters")
        if body.expires_at is not None and body.expires_at.tzinfo is None:
            raise HTTPException(422, "expires_at needs a time zone (e.g. 2026-01-01T00:00:00Z)")
        t = IdToken(token=token, type=body.type, status=body.status, expires_at=body.expires_at)
        await p.admin.upsert_token(t)
        return _token_out(t)

    @api.delete("/tokens/{token}", dependencies=[admin], status_code=204, tags=["tokens"], responses=NOT_FOUND)
    async def delete_token(token: str) -> Response:
        if not await p.admin.delete_token(token):
            raise HTTPException(404, f"no token {token!r}")
        return Response(status_code=204)

    # -- API keys ---------------------------------------------------------------------------
    @api.post("/apikeys", dependencies=[admin], status_code=201, tags=["admin"])
    async def create_key(body: m.ApiKeyIn) -> m.ApiKeyOut:
        return m.ApiKeyOut(key=await p.admin.create_api_key(body.role, body.name), role=body.role)

    # -- live events --------------------------------------------------------------------------
    @api.get(
        "/events",
        dependencies=[viewer],
        tags=["events"],
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
    )
    async def events(request: Request) -> StreamingResponse:
        sub = p.bus.subscribe()  # before the response starts: no event slips through

        async def stream() -> AsyncIterator[bytes]:
            try:
                yield b"retry: 2000\n: connected\n\n"
                while True:
                    try:
                        topic, data = await asyncio.wait_for(anext(sub), 15)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                        continue
                    yield b"event: " + topic.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
            finally:
                await sub.aclose()

        return StreamingResponse(
            stream(), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    app.include_router(api)

    # -- operations ---------------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        ok = ready()
        return JSONResponse({"status": "ready" if ok else "starting"}, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


