"""Table definitions. The Alembic migrations under ``migrations/`` must produce exactly this
schema on both SQLite and PostgreSQL (a test compares them).

Times are stored as UTC. SQLite has no time zones, so :class:`UTCDateTime` re-attaches UTC on
the way out and refuses naive datetimes on the way in (a naive time is a bug upstream).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    }
)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; times must be UTC-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

chargers = sa.Table(
    "chargers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("password_hash", sa.String(200), nullable=True),
    sa.Column("vendor", sa.String(50), nullable=True),
    sa.Column("model", sa.String(50), nullable=True),
    sa.Column("serial_number", sa.String(50), nullable=True),
    sa.Column("firmware_version", sa.String(50), nullable=True),
    sa.Column("ocpp_version", sa.String(16), nullable=True),
    sa.Column("registered_at", UTCDateTime(), nullable=False),
    sa.Column("last_boot_at", UTCDateTime(), nullable=True),
    sa.Column("last_seen_at", UTCDateTime(), nullable=True),
)

connector_statuses = sa.Table(
    "connector_statuses",
    metadata,
    sa.Column("charger_id", sa.String(64), sa.ForeignKey("chargers.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("evse_id", sa.Integer(), primary_key=True),
    sa.Column("connector_id", sa.Integer(), primary_key=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("error_code", sa.String(50), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

id_tokens = sa.Table(
    "id_tokens",
    metadata,
    sa.Column("token", sa.String(255), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("name", sa.String(100), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false()),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("charger_id", sa.String(64), nullable=False),
    sa.Column("evse_id", sa.Integer(), nullable=False),
    sa.Column("connector_id", sa.Integer(), nullable=False),
    # NULL only between the insert of a 1.6 session and the assignment of its id.
    sa.Column("transaction_id", sa.String(64), nullable=True),
    sa.Column("ocpp_version", sa.String(16), nullable=False),
    sa.Column("id_token", sa.String(255), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("stopped_at", UTCDateTime(), nullable=True),
    sa.Column("meter_start_wh", sa.BigInteger(), nullable=True),
    sa.Column("meter_start_at", UTCDateTime(), nullable=True),
    sa.Column("meter_last_wh", sa.BigInteger(), nullable=True),
    sa.Column("meter_last_at", UTCDateTime(), nullable=True),
    sa.Column("energy_wh", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("power_w", sa.Integer(), nullable=True),
    sa.Column("soc_percent", sa.Float(), nullable=True),
    sa.Column("stop_reason", sa.String(32), nullable=True),
    sa.Column("last_seq_no", sa.Integer(), nullable=True),
    sa.Column("start_key", sa.String(32), nullable=True),
    sa.Column("reservation_id", sa.BigInteger(), nullable=True),
    sa.Column("currency", sa.String(3), nullable=True),
    sa.Column("price_total", sa.Numeric(12, 4), nullable=True),
    sa.Column("updated_at", UTCDateTime(), nullable=True),
    sa.UniqueConstraint("charger_id", "transaction_id"),
    sa.UniqueConstraint("charger_id", "start_key"),
    sa.Index(None, "status", "charger_id"),
)

transaction_events = sa.Table(
    "transaction_events",
    metadata,
    sa.Column("charger_id", sa.String(64), primary_key=True),
    sa.Column("transaction_id", sa.String(64), primary_key=True),
    sa.Column("seq_no", sa.Integer(), primary_key=True),
    sa.Column("event_type", sa.String(16), nullable=False),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
)

meter_samples = sa.Table(
    "meter_samples",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("charger_id", sa.String(64), nullable=False),
    sa.Column("evse_id", sa.Integer(), nullable=False),
    sa.Column("connector_id", sa.Integer(), nullable=False),
    sa.Column("transaction_id", sa.String(64), nullable=True),
    sa.Column("timestamp", UTCDateTime(), nullable=False),
    sa.Column("digest", sa.String(24), nullable=False),
    sa.Column("energy_wh", sa.BigInteger(), nullable=True),
    sa.Column("power_w", sa.Integer(), nullable=True),
    sa.Column("sampled_values", sa.JSON(), nullable=False),
    # The only index, on purpose: it dedupes replays and serves every read (a charger's samples
    # in a time window, a session's within its start and stop). A second index on the
    # transaction cost ~40 % more per insert, and inserts are the hot path.
    sa.UniqueConstraint("charger_id", "timestamp", "digest"),
)
