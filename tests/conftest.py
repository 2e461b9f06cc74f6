"""Shared fixtures: a running CSMS over each database backend, and a way to reach it.

PostgreSQL tests need the server on localhost (CI's .ci/run starts it). They never skip: a
missing server is a failure, so CI cannot silently test SQLite only. Each test gets a fresh
database (SQLite file or a new PostgreSQL database) so tests cannot see each other's data.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from chargegrid.app import Csms, open_csms
from chargegrid.config import Settings
from chargegrid.core.model import Role

PG_ADMIN_URL = os.environ.get("CHARGEGRID_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


@contextlib.asynccontextmanager
async def fresh_pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for one test; dropped afterwards."""
    name = f"cgtest_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(_pg_dsn(PG_ADMIN_URL))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chargegrid.db'}"
    else:
        async with fresh_pg_database() as url:
            yield url


def settings_for(db_url: str, **kw: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url, "ocpp_port": 0, "http_port": 0, "host": "127.0.0.1", "log_level": "warning",
        "command_timeout": 5.0,
    }
    values.update(kw)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def csms(db_url: str) -> AsyncIterator[Csms]:
    async with open_csms(settings_for(db_url)) as c:
        yield c


@pytest.fixture
async def admin_key(csms: Csms) -> str:
    return await csms.platform.admin.create_api_key(Role.ADMIN, "tests")


PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
async def registered(csms: Csms) -> str:
    """A registered charger id with password PASSWORD."""
    await csms.platform.chargers.register("CP-1", PASSWORD)
    return "CP-1"
