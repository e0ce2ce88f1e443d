"""The store's tables (SQLAlchemy Core). Alembic migrations create them; keep the two in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Float,
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
    type_coerce,
)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone: store naive UTC, read back aware)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_stored(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def as_stored(value: datetime) -> datetime:
    """An aware datetime as the stores keep it: naive UTC."""
    return value.astimezone(UTC).replace(tzinfo=None)


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (the stores keep naive UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def stored_as_is(column: Any) -> Any:
    """`column` read without its type's Python conversion (`UtcDateTime`'s, for one): for the
    columns a list reads of every row but uses of one (a 2,000-row list spent a tenth of its CPU
    converting timestamps it then dropped)."""
    return type_coerce(column, column.type.impl) if isinstance(column.type, TypeDecorator) else column


# PostgreSQL's clock as the timestamp columns keep it (naive UTC): write times on a store that several
# replicas share come from it, not from each replica's clock (its transaction's or statement's start).
DATABASE_NOW = "timezone('UTC', now())"

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
    Column("response", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# What each encryption key id's bytes must give (HMAC-SHA256 of a fixed label): replicas agree on keys.
key_checks = Table(
    "key_checks",
    metadata,
    Column("key_id", String(255), primary_key=True),
    Column("check_value", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

# -- health (issue 18) ----------------------------------------------------------------------

# One row per connection the scheduler watches: its state, when it is next due, and the lease of
# the replica checking it now (a replica killed mid-check loses the lease when `lease_until` passes).
connection_health = Table(
    "connection_health",
    metadata,
    Column("connection_number", Serial, ForeignKey("connections.number"), primary_key=True),
    Column("connection_id", Uuid, nullable=False),  # the connection's id, so a claim reads it by id
    Column("tenant", String(200), nullable=False),
    Column("state", String(8), nullable=False),  # up, down, unknown
    Column("state_since", UtcDateTime, nullable=False),
    Column("next_check_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UtcDateTime),
    Column("consecutive_failures", Integer, nullable=False),
    Column("interval_s", Integer),  # the connection's own interval; NULL: CONNHUB_HEALTH_INTERVAL_S
    Column("last_checked_at", UtcDateTime),
    Column("last_category", String(32)),
    Column("cert_expires_at", UtcDateTime),
    Column("cert_warned_for", UtcDateTime),  # the expiry already announced (one alert per certificate)
    Index("ix_connection_health_due", "next_check_at"),
    Index("ix_connection_health_state", "state"),
)

health_results = Table(
    "health_results",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("connection_number", Serial, ForeignKey("connections.number"), nullable=False),
    Column("checked_at", UtcDateTime, nullable=False),
    Column("status", String(8), nullable=False),  # up, down
    Column("category", String(32)),
    Column("latency_ms", Float, nullable=False),
    Column("server_version", String(200)),
    Column("cert_expires_at", UtcDateTime),
    Index("ix_health_results_connection", "connection_number", "checked_at"),
    Index("ix_health_results_checked", "checked_at"),
)

# Webhook events waiting to be delivered (`pending`) or given up on after N attempts (`dead`, the
# dead letters). Kept in the store so a restart loses none and each replica delivers each once.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("body", Text, nullable=False),  # the exact JSON sent (and signed)
    Column("created_at", UtcDateTime, nullable=False),
    Column("status", String(8), nullable=False),  # pending, dead
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(64)),
    Column("lease_until", UtcDateTime),
    Column("last_error", String(500)),
    Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)

# -- audit (issue 18) -----------------------------------------------------------------------

# Append-only: the repository has no update or delete of it, and a trigger refuses both.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Serial, primary_key=True, autoincrement=True),
    Column("tenant", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("action", String(32), nullable=False),
    Column("connection_id", Uuid),
    Column("actor", String(255)),  # the token's `sub`
    Column("request_id", String(200)),
    Column("dialect", String(16)),
    Column("source", String(64)),
    Column("fields", JSON),  # names of the fields written, never their values
    Column("details", JSON),  # fixed vocabulary only (a test's status and category, counts)
    Index("ix_audit_log_tenant", "tenant", "id"),
    Index("ix_audit_log_connection", "tenant", "connection_id", "id"),
)
