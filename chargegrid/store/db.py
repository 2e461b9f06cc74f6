"""Engine creation and migrations.

Operators write ``sqlite:///PATH`` or ``postgresql://USER@HOST/DB``; the async drivers are
picked here (aiosqlite, asyncpg) so nobody has to know SQLAlchemy's driver suffixes. The
``+asyncpg`` / ``+aiosqlite`` forms are accepted as they are.

SQLite runs in WAL mode with ``synchronous=NORMAL``: readers (the API) never block the writer
(the OCPP path), and a commit survives a process crash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).with_name("migrations")


class BadDatabaseUrl(ValueError):
    pass


def async_url(url: str) -> str:
    """Translate an operator's URL to the async driver form."""
    if url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        return url
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise BadDatabaseUrl(f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql://USER@HOST/DB")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def create_engine(url: str) -> AsyncEngine:
    real = async_url(url)
    if real.startswith("sqlite"):
        engine = create_async_engine(real, pool_size=4, max_overflow=4)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(real, pool_size=10, max_overflow=10, pool_pre_ping=True)
    return engine


def _alembic_config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (Alembic, on the engine's own connection)."""

    def run(connection: Connection) -> None:
        command.upgrade(_alembic_config(connection), revision)

    async with engine.begin() as conn:
        await conn.run_sync(run)
