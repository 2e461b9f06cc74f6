"""Migrations, the store's idempotency, and the administration CLI, on both databases."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from chargegrid.core.credentials import verify_password
from chargegrid.core.meter import make_sample, values_v16
from chargegrid.core.model import IdToken, OcppVersion, Role, Session, SessionStatus, TokenStatus
from chargegrid.services.ports import StoredEvent
from chargegrid.store.db import async_url, create_engine, migrate
from chargegrid.store.sql import SqlStore
from chargegrid.store.tables import metadata

T = datetime(2026, 11, 25, 12, tzinfo=UTC)


def test_database_urls() -> None:
    assert async_url("sqlite:///x.db") == "sqlite+aiosqlite:///x.db"
    assert async_url("postgresql://u@h/db") == "postgresql+asyncpg://u@h/db"
    assert async_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"
    try:
        async_url("mysql://x")
    except ValueError as e:
        assert "unsupported" in str(e)
    else:
        raise AssertionError("mysql accepted")


async def test_migrations_match_models(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        await migrate(engine)  # idempotent

        def diff(conn):  # type: ignore[no-untyped-def]
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            return compare_metadata(ctx, metadata), inspect(conn).get_table_names()

        async with engine.connect() as conn:
            changes, tables = await conn.run_sync(diff)
        assert changes == []
        assert {"chargers", "sessions", "meter_samples", "transaction_events", "id_tokens", "api_keys"} <= set(tables)
    finally:
        await engine.dispose()


async def test_store_idempotency(db_url: str) -> None:
    engine = create_engine(db_url)
    await migrate(engine)
    store = SqlStore(engine)
    try:
        assert await store.add_charger("C1", None, T) is True
        assert await store.add_charger("C1", "h", T) is False
        assert (await store.credentials())["C1"] == "h"
        s = Session(id=None, charger_id="C1", evse_id=1, connector_id=1, transaction_id="", ocpp_version=OcppVersion.V16,
                    id_token="T", status=SessionStatus.ACTIVE, started_at=T, start_key="k1")
        a = await store.insert_session(s)
        b = await store.insert_session(s)
        assert a.id == b.id and a.transaction_id == str(a.id)
        done = dataclasses.replace(a, status=SessionStatus.COMPLETED, energy_wh=5, price_total="1.2345", currency="EUR")
        await store.update_session(done)
        again = await store.session_by_id(a.id or 0)
        assert again is not None and again.price_total == "1.2345" and again.started_at == T
        s2 = await store.insert_session(dataclasses.replace(s, start_key="k2"))
        moved = dataclasses.replace(s2, meter_last_wh=900, energy_wh=900, power_w=7000, soc_percent=55.5)
        stale = dataclasses.replace(done, energy_wh=1)  # a snapshot taken before it completed
        await store.update_live_figures([moved, stale])
        got = await store.session_by_id(s2.id or 0)
        assert got is not None and got.energy_wh == 900 and got.power_w == 7000 and got.soc_percent == 55.5
        still = await store.session_by_id(a.id or 0)
        assert still is not None and still.energy_wh == 5 and still.status is SessionStatus.COMPLETED
        ev = StoredEvent(charger_id="C1", transaction_id="x", seq_no=3, event_type="Updated", timestamp=T)
        ev2 = dataclasses.replace(ev, seq_no=4)
        assert await store.record_transaction_events([ev]) == {("C1", "x", 3)}
        assert await store.record_transaction_events([ev, ev2]) == {("C1", "x", 4)}
        m = make_sample(charger_id="C1", evse_id=1, connector_id=1, transaction_id="x", timestamp=T,
                        values=values_v16([{"value": "10"}]))
        assert await store.add_meter_samples([m, m]) == 1
        assert await store.add_meter_samples([m]) == 0
        later = m._replace(timestamp=T + timedelta(seconds=60))  # same digest, another instant
        assert later.digest == m.digest
        assert await store.add_meter_samples([later]) == 1
        other_charger = m._replace(charger_id="C2")
        assert await store.add_meter_samples([other_charger]) == 1
        await store.upsert_token(IdToken(token="A", status=TokenStatus.BLOCKED))
        await store.upsert_token(IdToken(token="A", status=TokenStatus.ACCEPTED, expires_at=T))
        tok = await store.get_token("A")
        assert tok is not None and tok.status is TokenStatus.ACCEPTED and tok.expires_at == T
        kid = await store.add_api_key("f" * 64, Role.VIEWER, None, T)
        rec = await store.get_api_key("f" * 64)
        assert rec is not None and rec.id == kid and rec.role is Role.VIEWER
    finally:
        await store.close()


def cli(*args: str, db_url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CHARGEGRID_DATABASE_URL": db_url}
    return subprocess.run([sys.executable, "-m", "chargegrid", *args], capture_output=True, text=True, env=env,
                          timeout=60, input=stdin)


async def test_cli_administration(db_url: str) -> None:
    r = cli("chargers", "add", "CLI-1", "--password", "cli-password-123", db_url=db_url)
    assert r.returncode == 0, r.stderr
    assert "registered charger CLI-1" in r.stdout
    r = cli("chargers", "add", "CLI-2", db_url=db_url)
    assert r.returncode != 0 and "--password" in r.stderr
    r = cli("tokens", "add", "RFID-9", "--status", "Blocked", "--expires", "2030-01-01T00:00:00Z", db_url=db_url)
    assert r.returncode == 0, r.stderr
    r = cli("tokens", "add", "RFID-8", "--expires", "tomorrow", db_url=db_url)
    assert r.returncode != 0 and "ISO 8601" in r.stderr
    r = cli("apikey", "create", "--role", "viewer", db_url=db_url)
    assert r.returncode == 0 and r.stdout.strip().startswith("cgk_")
    r = cli("apikey", "create", "--role", "root", db_url=db_url)
    assert r.returncode != 0
    r = cli("chargers", "import", "-", db_url=db_url,
            stdin="# id,password\nFLEET-1,fleet-password-1\nFLEET-2,fleet-password-2\nCLI-1,new-password-99\n")
    assert r.returncode == 0, r.stderr
    assert "3 chargers imported (2 new)" in r.stdout
    r = cli("chargers", "list", db_url=db_url)
    assert "CLI-1" in r.stdout and "FLEET-2" in r.stdout
    r = cli("tokens", "list", db_url=db_url)
    assert "RFID-9" in r.stdout and "Blocked" in r.stdout
    engine = create_engine(db_url)
    store = SqlStore(engine)
    try:
        creds = await store.credentials()
        assert creds["CLI-1"] is not None and "cli-password-123" not in creds["CLI-1"]
        assert verify_password("new-password-99", creds["CLI-1"])
        assert creds["FLEET-1"] is not None and verify_password("fleet-password-1", creds["FLEET-1"])
    finally:
        await store.close()
