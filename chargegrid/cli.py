"""The ``chargegrid`` command: serve, demo, simulate, administration and charger commands.

Every option of ``serve`` is also an environment variable (``CHARGEGRID_DATABASE_URL``, ...).
Administration commands work on the database directly; charger commands go through a running
server's HTTP API (the charger's socket lives in that server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from chargegrid.config import Settings
from chargegrid.core.model import IdToken, Role, TokenStatus
from chargegrid.services.ports import Subscription

app = typer.Typer(help="chargegrid: an open-source EV charging central system (OCPP 1.6 / 2.0.1 / 2.1).",
                  no_args_is_help=True, add_completion=False)
chargers_app = typer.Typer(help="Register and list chargers.", no_args_is_help=True)
tokens_app = typer.Typer(help="Drivers' ID tokens.", no_args_is_help=True)
apikey_app = typer.Typer(help="Operator API keys.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
cmd_app = typer.Typer(help="Send a command to a connected charger (through the server's HTTP API).",
                      no_args_is_help=True)
app.add_typer(chargers_app, name="chargers")
app.add_typer(tokens_app, name="tokens")
app.add_typer(apikey_app, name="apikey")
app.add_typer(db_app, name="db")
app.add_typer(cmd_app, name="cmd")
console = Console()
err = Console(stderr=True)

DbUrl = Annotated[str | None, typer.Option("--database-url", envvar="CHARGEGRID_DATABASE_URL",
                                           help="sqlite:///PATH (default ./chargegrid.db) or postgresql://USER@HOST/DB")]


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop

        return uvloop.run(coro)
    except ImportError:  # pragma: no cover - uvloop is a dependency; keep working without it
        return asyncio.run(coro)


def _settings(database_url: str | None, **kw: Any) -> Settings:
    values = {k: v for k, v in kw.items() if v is not None}
    if database_url is not None:
        values["database_url"] = database_url
    return Settings(**values)


async def _with_store(settings: Settings, fn: Any) -> Any:
    from chargegrid.store.db import create_engine, migrate
    from chargegrid.store.sql import SqlStore

    engine = create_engine(settings.database_url)
    try:
        await migrate(engine)
        return await fn(SqlStore(engine))
    finally:
        await engine.dispose()


def _now() -> datetime:
    return datetime.now(UTC)


# -- serve / demo / simulate -----------------------------------------------------------------
@app.command()
def serve(
    database_url: DbUrl = None,
    ocpp_port: Annotated[int | None, typer.Option(envvar="CHARGEGRID_OCPP_PORT", help="default 9000")] = None,
    http_port: Annotated[int | None, typer.Option(envvar="CHARGEGRID_HTTP_PORT", help="default 8080")] = None,
    host: Annotated[str | None, typer.Option(envvar="CHARGEGRID_HOST", help="default 127.0.0.1")] = None,
    auto_register: Annotated[bool | None, typer.Option("--auto-register", envvar="CHARGEGRID_AUTO_REGISTER",
                                                       help="accept unknown chargers (demo only)")] = None,
    log_format: Annotated[str | None, typer.Option(envvar="CHARGEGRID_LOG_FORMAT", help="console|json")] = None,
    log_level: Annotated[str | None, typer.Option(envvar="CHARGEGRID_LOG_LEVEL")] = None,
) -> None:
    """Run the central system: OCPP WebSocket endpoint, HTTP API and dashboard."""
    from chargegrid import logs
    from chargegrid.app import open_csms

    settings = _settings(database_url, ocpp_port=ocpp_port, http_port=http_port, host=host,
                         auto_register=auto_register, log_format=log_format, log_level=log_level)
    logs.configure(settings.log_level, settings.log_format)

    async def main() -> None:
        async with open_csms(settings) as csms:
            err.print(f"OCPP endpoint  {csms.ocpp_url}/{{charger_id}}")
            err.print(f"HTTP API       {csms.http_url}/api/v1  (OpenAPI: {csms.http_url}/openapi.json)")
            err.print(f"Dashboard      {csms.http_url}/")
            await _until_signal()

    _run(main())


async def _cancel(*tasks: asyncio.Task[Any]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await t


async def _until_signal(seconds: float | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


@app.command()
def demo(
    chargers: Annotated[int, typer.Option(help="simulated chargers (a mix of 1.6 and 2.0.1)")] = 20,
    database_url: Annotated[str, typer.Option("--database-url")] = "sqlite:///./chargegrid-demo.db",
    ocpp_port: int = 9000,
    http_port: int = 8080,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 60.0,
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
) -> None:
    """The main job on SQLite: the CSMS with simulated chargers and drivers charging."""
    from chargegrid import logs
    from chargegrid.app import open_csms
    from chargegrid.sim.runner import SimConfig, run_simulation

    settings = Settings(database_url=database_url, ocpp_port=ocpp_port, http_port=http_port, auto_register=True,
                        log_level="warning", heartbeat_interval=60)
    logs.configure(settings.log_level, settings.log_format)
    tokens = tuple(f"DEMO{i:04d}" for i in range(1, 41))

    async def main() -> None:
        async with open_csms(settings) as csms:
            p = csms.platform
            for t in tokens:
                await p.admin.upsert_token(IdToken(token=t))
            key = await p.admin.create_api_key(Role.ADMIN, "demo")
            console.print(f"[bold green]chargegrid demo[/] on {settings.database_url}")
            console.print(f"Dashboard: [bold]{csms.http_url}/login?key={key}[/]")
            console.print(f"API key (admin): {key}    OpenAPI: {csms.http_url}/openapi.json")
            config = SimConfig(url=csms.ocpp_url, chargers=chargers, protocol="mix", prefix="DEMO", speed=speed,
                               meter_interval_s=5.0, id_tokens=tokens, arrival_rate_per_hour=1.0,
                               drop_probability_per_hour=0.05, duration_s=duration)
            sim = asyncio.create_task(run_simulation(config, progress=True))
            waiter = asyncio.create_task(_until_signal(duration))
            await asyncio.wait({sim, waiter}, return_when=asyncio.FIRST_COMPLETED)
            await _cancel(sim, waiter)

    _run(main())


@app.command()
def simulate(
    url: Annotated[str, typer.Option(help="the CSMS's OCPP base URL; /CHARGER_ID is appended")] =
        "ws://127.0.0.1:9000/ocpp",
    chargers: int = 10,
    protocol: Annotated[str, typer.Option(help="1.6 | 2.0.1 | 2.1 | mix")] = "mix",
    prefix: str = "SIM",
    password: Annotated[str | None, typer.Option(help="HTTP Basic password for every charger")] =
        "simulated-charger-secret",
    connectors: int = 2,
    arrival_rate: Annotated[float, typer.Option(help="drivers per connector per simulated hour")] = 2.0,
    speed: Annotated[float, typer.Option(help="simulated seconds per real second")] = 1.0,
    meter_interval: Annotated[float, typer.Option(help="real seconds between MeterValues")] = 10.0,
    drop_rate: Annotated[float, typer.Option(help="connection drops per charger per simulated hour")] = 0.0,
    duration: Annotated[float | None, typer.Option(help="seconds to run (default: until Ctrl-C)")] = None,
    tokens: Annotated[str, typer.Option(help="comma-separated ID tokens the drivers use")] = "SIMTOKEN01",
    seed: int | None = None,
) -> None:
    """Simulated chargers and drivers against any OCPP central system."""
    from chargegrid.sim.runner import SimConfig, run_simulation

    if protocol not in ("1.6", "2.0.1", "2.1", "mix"):
        raise typer.BadParameter("protocol must be 1.6, 2.0.1, 2.1 or mix")
    config = SimConfig(url=url, chargers=chargers, protocol=protocol, prefix=prefix, password=password,
                       connectors=connectors, arrival_rate_per_hour=arrival_rate, speed=speed,
                       meter_interval_s=meter_interval, drop_probability_per_hour=drop_rate, duration_s=duration,
                       id_tokens=tuple(t for t in tokens.split(",") if t), seed=seed)

    async def main() -> None:
        task = asyncio.create_task(run_simulation(config, progress=True))
        waiter = asyncio.create_task(_until_signal(None))
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        await _cancel(task, waiter)

    _run(main())


# -- administration -----------------------------------------------------------------------------
@chargers_app.command("add")
def chargers_add(
    charger_id: Annotated[str, typer.Argument(metavar="ID")],
    password: Annotated[str | None, typer.Option(help="HTTP Basic password (16-40 random characters advised)")]
        = None,
    no_password: Annotated[bool, typer.Option("--no-password", help="allow without credentials")] = False,
    database_url: DbUrl = None,
) -> None:
    """Register a charger (or change its password)."""
    from chargegrid.services.chargers import ChargerService

    if password is None and not no_password:
        raise typer.BadParameter("give --password P (or --no-password to allow it without credentials)")
    if "/" in charger_id or not charger_id or len(charger_id) > 64:
        raise typer.BadParameter("a charger id is 1-64 characters without '/'")

    async def go(store: Any) -> bool:
        svc = ChargerService(store, _NullBus(), _now)
        return await svc.register(charger_id, password)

    created = _run(_with_store(_settings(database_url), go))
    console.print(f"{'registered' if created else 'updated'} charger {charger_id}")


class _NullBus:
    """The CLI runs no live views: events go nowhere."""

    def publish(self, topic: str, data: dict[str, Any]) -> None:
        return None

    def subscribe(self) -> Subscription:  # pragma: no cover - unused
        raise NotImplementedError


@chargers_app.command("import")
def chargers_import(
    path: Annotated[str, typer.Argument(metavar="FILE", help="CSV lines: charger_id,password ('-' for stdin)")],
    database_url: DbUrl = None,
) -> None:
    """Register (or re-key) many chargers at once, e.g. a fleet being commissioned."""
    import csv
    import io

    from chargegrid.core.credentials import hash_password

    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    pairs: list[tuple[str, str | None]] = []
    for n, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row or row[0].startswith("#"):
            continue
        cid = row[0].strip()
        password = row[1].strip() if len(row) > 1 and row[1].strip() else None
        if not cid or "/" in cid or len(cid) > 64:
            raise typer.BadParameter(f"line {n}: a charger id is 1-64 characters without '/'")
        pairs.append((cid, password))
    hashed = [(cid, None if pw is None else hash_password(pw, os.urandom(16))) for cid, pw in pairs]

    async def go(store: Any) -> int:
        return int(await store.add_chargers(hashed, _now()))

    created = _run(_with_store(_settings(database_url), go))
    console.print(f"{len(pairs)} chargers imported ({created} new)")


@chargers_app.command("list")
def chargers_list(database_url: DbUrl = None) -> None:
    """List registered chargers and their last known connector statuses."""

    async def go(store: Any) -> Any:
        return await store.list_chargers()

    table = Table("id", "ocpp", "vendor", "model", "last seen", "connectors")
    for ch in _run(_with_store(_settings(database_url), go)):
        table.add_row(ch.id, ch.ocpp_version or "-", ch.vendor or "-", ch.model or "-",
                      ch.last_seen_at.isoformat(timespec="seconds") if ch.last_seen_at else "-",
                      " ".join(f"{c.evse_id}/{c.connector_id}:{c.status}" for c in ch.connectors) or "-")
    console.print(table)


@chargers_app.command("remove")
def chargers_remove(charger_id: Annotated[str, typer.Argument(metavar="ID")], database_url: DbUrl = None) -> None:
    """Unregister a charger (it can no longer connect)."""

    async def go(store: Any) -> bool:
        return bool(await store.remove_charger(charger_id))

    if not _run(_with_store(_settings(database_url), go)):
        err.print(f"no charger {charger_id}")
        raise typer.Exit(1)
    console.print(f"removed charger {charger_id}")


@tokens_app.command("add")
def tokens_add(
    token: str,
    status: Annotated[TokenStatus, typer.Option(case_sensitive=False)] = TokenStatus.ACCEPTED,
    expires: Annotated[str | None, typer.Option(help="ISO 8601 expiry, e.g. 2027-01-01T00:00:00Z")] = None,
    type_: Annotated[str, typer.Option("--type", help="ISO14443, ISO15693, eMAID, Central, ...")] = "ISO14443",
    database_url: DbUrl = None,
) -> None:
    """Add or update a driver's ID token."""
    expires_at = None
    if expires is not None:
        try:
            expires_at = datetime.fromisoformat(expires)
        except ValueError:
            raise typer.BadParameter(f"not an ISO 8601 time: {expires!r}") from None
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
    if not token or len(token) > 255:
        raise typer.BadParameter("a token is 1-255 characters")
    t = IdToken(token=token, type=type_, status=status, expires_at=expires_at)

    async def go(store: Any) -> None:
        await store.upsert_token(t)

    _run(_with_store(_settings(database_url), go))
    console.print(f"token {token}: {status.value}" + (f", expires {expires_at.isoformat()}" if expires_at else ""))


@tokens_app.command("list")
def tokens_list(database_url: DbUrl = None) -> None:
    """List ID tokens."""

    async def go(store: Any) -> Any:
        return await store.list_tokens()

    table = Table("token", "type", "status", "expires")
    for t in _run(_with_store(_settings(database_url), go)):
        table.add_row(t.token, t.type, t.status.value, t.expires_at.isoformat() if t.expires_at else "-")
    console.print(table)


@apikey_app.command("create")
def apikey_create(
    role: Annotated[Role, typer.Option(case_sensitive=False, help="admin | operator | viewer")],
    name: Annotated[str | None, typer.Option(help="who or what the key is for")] = None,
    database_url: DbUrl = None,
) -> None:
    """Create an API key and print it (it is shown only once)."""
    from chargegrid.services.admin import AdminService

    async def go(store: Any) -> str:
        return await AdminService(store, _now).create_api_key(role, name)

    print(_run(_with_store(_settings(database_url), go)))


@db_app.command("upgrade")
def db_upgrade(database_url: DbUrl = None) -> None:
    """Apply the schema migrations (serve also does this at start)."""

    async def go(store: Any) -> None:
        return None

    _run(_with_store(_settings(database_url), go))
    console.print("database schema is up to date")


# -- commands to chargers through the API ---------------------------------------------------------
ApiUrl = Annotated[str, typer.Option("--api-url", envvar="CHARGEGRID_API_URL")]
ApiKey = Annotated[str | None, typer.Option("--api-key", envvar="CHARGEGRID_API_KEY")]
Timeout = Annotated[float, typer.Option(help="seconds to wait for the charger")]


def _post(api_url: str, api_key: str | None, charger_id: str, path: str, body: dict[str, Any],
          timeout: float) -> None:
    import httpx

    if not api_key:
        err.print("give --api-key or set CHARGEGRID_API_KEY (chargegrid apikey create --role operator)")
        raise typer.Exit(2)
    try:
        r = httpx.post(f"{api_url.rstrip('/')}/api/v1/chargers/{charger_id}/{path}", json=body,
                       params={"timeout": timeout}, headers={"Authorization": f"Bearer {api_key}"},
                       timeout=timeout + 5)
    except httpx.HTTPError as exc:
        err.print(f"cannot reach {api_url}: {exc}")
        raise typer.Exit(2) from None
    if r.status_code >= 400:
        try:
            detail = r.json().get("detail")
        except ValueError:
            detail = r.text
        err.print(f"error {r.status_code}: {detail}")
        raise typer.Exit(1)
    print(json.dumps(r.json(), indent=2))


DEFAULT_API = "http://127.0.0.1:8080"


@cmd_app.command("start")
def cmd_start(charger_id: str, id_token: Annotated[str, typer.Option("--id-token")],
              evse: int | None = None, connector: int | None = None,
              api_url: ApiUrl = DEFAULT_API, api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """Remote start a transaction."""
    _post(api_url, api_key, charger_id, "start",
          {"id_token": id_token, "evse_id": evse, "connector_id": connector}, timeout)


@cmd_app.command("stop")
def cmd_stop(charger_id: str, transaction_id: Annotated[str, typer.Option("--transaction-id")],
             api_url: ApiUrl = DEFAULT_API, api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """Remote stop a transaction."""
    _post(api_url, api_key, charger_id, "stop", {"transaction_id": transaction_id}, timeout)


@cmd_app.command("reset")
def cmd_reset(charger_id: str, hard: bool = False, api_url: ApiUrl = DEFAULT_API, api_key: ApiKey = None,
              timeout: Timeout = 30) -> None:
    """Reset (soft by default)."""
    _post(api_url, api_key, charger_id, "reset", {"type": "hard" if hard else "soft"}, timeout)


@cmd_app.command("availability")
def cmd_availability(charger_id: str, operative: Annotated[bool, typer.Option("--operative/--inoperative")],
                     evse: int = 0, connector: int | None = None, api_url: ApiUrl = DEFAULT_API,
                     api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """Change availability of the charger (evse 0) or one EVSE/connector."""
    _post(api_url, api_key, charger_id, "availability",
          {"operative": operative, "evse_id": evse, "connector_id": connector}, timeout)


@cmd_app.command("unlock")
def cmd_unlock(charger_id: str, evse: int, connector: int = 1, api_url: ApiUrl = DEFAULT_API,
               api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """Unlock a connector."""
    _post(api_url, api_key, charger_id, "unlock", {"evse_id": evse, "connector_id": connector}, timeout)


@cmd_app.command("trigger")
def cmd_trigger(charger_id: str, message: str, evse: int | None = None, api_url: ApiUrl = DEFAULT_API,
                api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """Ask the charger to send a message (StatusNotification, MeterValues, BootNotification, ...)."""
    _post(api_url, api_key, charger_id, "trigger", {"message": message, "evse_id": evse}, timeout)


@cmd_app.command("get-config")
def cmd_get_config(charger_id: str, keys: Annotated[list[str] | None, typer.Argument()] = None,
                   api_url: ApiUrl = DEFAULT_API, api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """OCPP 1.6 GetConfiguration (all keys when none given)."""
    _post(api_url, api_key, charger_id, "configuration/get", {"keys": keys or []}, timeout)


@cmd_app.command("set-config")
def cmd_set_config(charger_id: str, key: str, value: str, api_url: ApiUrl = DEFAULT_API,
                   api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """OCPP 1.6 ChangeConfiguration."""
    _post(api_url, api_key, charger_id, "configuration/change", {"key": key, "value": value}, timeout)


def _variable(ref: str) -> dict[str, str]:
    component, _, variable = ref.partition(".")
    if not component or not variable:
        raise typer.BadParameter(f"write variables as Component.Variable, not {ref!r}")
    return {"component": component, "variable": variable}


@cmd_app.command("get-variables")
def cmd_get_variables(charger_id: str, refs: Annotated[list[str], typer.Argument(help="Component.Variable")],
                      api_url: ApiUrl = DEFAULT_API, api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """OCPP 2.x GetVariables."""
    _post(api_url, api_key, charger_id, "variables/get", {"variables": [_variable(r) for r in refs]}, timeout)


@cmd_app.command("set-variable")
def cmd_set_variable(charger_id: str, ref: Annotated[str, typer.Argument(help="Component.Variable")], value: str,
                     api_url: ApiUrl = DEFAULT_API, api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """OCPP 2.x SetVariables (one variable)."""
    _post(api_url, api_key, charger_id, "variables/set", {"values": [{**_variable(ref), "value": value}]}, timeout)


@cmd_app.command("firmware")
def cmd_firmware(charger_id: str, location: str, retrieve_at: str | None = None, api_url: ApiUrl = DEFAULT_API,
                 api_key: ApiKey = None, timeout: Timeout = 30) -> None:
    """Update firmware from LOCATION (a URL the charger can reach)."""
    _post(api_url, api_key, charger_id, "firmware", {"location": location, "retrieve_at": retrieve_at}, timeout)


def main() -> None:
    if os.environ.get("CHARGEGRID_DEBUG"):
        sys.tracebacklimit = 1000
    app()
