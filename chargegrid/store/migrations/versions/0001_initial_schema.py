"""Initial schema: chargers, connector statuses, ID tokens, API keys, sessions, events, meter samples.

Revision ID: 0001
Revises: 
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_keys',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_keys_key_hash'))
    )
    op.create_table('chargers',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('vendor', sa.String(length=50), nullable=True),
    sa.Column('model', sa.String(length=50), nullable=True),
    sa.Column('serial_number', sa.String(length=50), nullable=True),
    sa.Column('firmware_version', sa.String(length=50), nullable=True),
    sa.Column('ocpp_version', sa.String(length=16), nullable=True),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_boot_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chargers'))
    )
    op.create_table('id_tokens',
    sa.Column('token', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_id_tokens'))
    )
    op.create_table('meter_samples',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charger_id', sa.String(length=64), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.String(length=64), nullable=True),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('digest', sa.String(length=24), nullable=False),
    sa.Column('energy_wh', sa.BigInteger(), nullable=True),
    sa.Column('power_w', sa.Integer(), nullable=True),
    sa.Column('sampled_values', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_meter_samples')),
    sa.UniqueConstraint('charger_id', 'timestamp', 'digest', name=op.f('uq_meter_samples_charger_id_timestamp_digest'))
    )

    op.create_table('sessions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('charger_id', sa.String(length=64), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('transaction_id', sa.String(length=64), nullable=True),
    sa.Column('ocpp_version', sa.String(length=16), nullable=False),
    sa.Column('id_token', sa.String(length=255), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('meter_start_wh', sa.BigInteger(), nullable=True),
    sa.Column('meter_start_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('meter_last_wh', sa.BigInteger(), nullable=True),
    sa.Column('meter_last_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('energy_wh', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('power_w', sa.Integer(), nullable=True),
    sa.Column('soc_percent', sa.Float(), nullable=True),
    sa.Column('stop_reason', sa.String(length=32), nullable=True),
    sa.Column('last_seq_no', sa.Integer(), nullable=True),
    sa.Column('start_key', sa.String(length=32), nullable=True),
    sa.Column('reservation_id', sa.BigInteger(), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=True),
    sa.Column('price_total', sa.Numeric(precision=12, scale=4), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions')),
    sa.UniqueConstraint('charger_id', 'start_key', name=op.f('uq_sessions_charger_id_start_key')),
    sa.UniqueConstraint('charger_id', 'transaction_id', name=op.f('uq_sessions_charger_id_transaction_id'))
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_status_charger_id'), ['status', 'charger_id'], unique=False)

    op.create_table('transaction_events',
    sa.Column('charger_id', sa.String(length=64), nullable=False),
    sa.Column('transaction_id', sa.String(length=64), nullable=False),
    sa.Column('seq_no', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=16), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('charger_id', 'transaction_id', 'seq_no', name=op.f('pk_transaction_events'))
    )
    op.create_table('connector_statuses',
    sa.Column('charger_id', sa.String(length=64), nullable=False),
    sa.Column('evse_id', sa.Integer(), nullable=False),
    sa.Column('connector_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=50), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['charger_id'], ['chargers.id'], name=op.f('fk_connector_statuses_charger_id_chargers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('charger_id', 'evse_id', 'connector_id', name=op.f('pk_connector_statuses'))
    )


def downgrade() -> None:
    op.drop_table('connector_statuses')
    op.drop_table('transaction_events')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_status_charger_id'))

    op.drop_table('sessions')
    op.drop_table('meter_samples')
    op.drop_table('id_tokens')
    op.drop_table('chargers')
    op.drop_table('api_keys')
