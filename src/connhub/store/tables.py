"""The store's tables (SQLAlchemy Core). Alembic migrations create them; keep the two in step."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    Uuid,
    text,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone: store naive UTC, read back aware)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()
# SQLite only makes an INTEGER PRIMARY KEY auto-increment.
Serial = BigInteger().with_variant(Integer(), "sqlite")
LIVE = text("deleted_at IS NULL")

connections = Table(
    "connections",
    metadata,
    Column("number", Serial, primary_key=True, autoincrement=True),
    Column("id", Uuid, nullable=False, unique=True),
    Column("tenant", String(200), nullable=False),
    Column("product_name", String(100)),
    Column("config_name", String(100), nullable=False),
    Column("name_key", String(400), nullable=False),  # trimmed, case-folded: what uniqueness compares
    Column("engine", String(16), nullable=False),
    Column("host", String(253), nullable=False),
    Column("port", Integer, nullable=False),
    Column("database_name", String(128), nullable=False),
    Column("user_name", String(128), nullable=False),
    Column("schema_name", String(128)),
    Column("ssl", JSON),  # the summary only: mode and has_* flags
    Column("metadata", JSON),
    Column("options", JSON),
    Column("sub_type", String(64)),
    Column("masked_connection_string", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("deleted_at", UtcDateTime),
    Column("version", Integer, nullable=False),
    # SSH tunnel settings without their secrets (those are in connection_secrets): host, port, user,
    # the trusted host key (typed, or recorded by the first successful test) and has* flags. Migration 0004
    # adds it last, so it is last here too: statements that RETURN stored.* read columns in this order.
    Column("ssh", JSON),
    Index(
        "uq_connections_live_name",
        "tenant",
        "name_key",
        unique=True,
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    ),
    Index(
        "ix_connections_live_created",
        "tenant",
        "created_at",
        "number",
        sqlite_where=LIVE,
        postgresql_where=LIVE,
    ),
)

connection_secrets = Table(
    "connection_secrets",
    metadata,
    Column("connection_number", Serial, ForeignKey("connections.number"), primary_key=True),
    Column("field", String(32), primary_key=True),
    Column("key_id", String(255), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),
    Index("ix_connection_secrets_key_id", "key_id"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("tenant", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("status", Integer, nullable=False),
    Column("response", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)
