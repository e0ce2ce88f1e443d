"""An in-memory store behind the service's repository port (connhub.service.ConnectionStore).

Small and honest: it keeps the rules the real store's indexes and version checks keep (a name is
unique among a tenant's live connections, compared as `normalized_text`; an idempotency key is
unique per tenant; a write over a read version that is no longer the stored one changes nothing
and answers None/False; a delete wipes the secrets). Listing knows pages and the two sort orders,
not the filters (the store's own tests cover those).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from connhub.domain.connection import Connection, ConnectionSpec, Stamp, normalized_text
from connhub.domain.errors import IdempotencyKeyTaken, NameTaken, NotFound
from connhub.domain.listing import ListQuery, Page
from connhub.domain.ssh import SshSummary
from connhub.store.repository import IdempotencyRecord, Sealed, StoredSecret


@dataclass
class Row:
    connection: Connection
    secrets: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # field -> (key id, ciphertext)
    deleted: bool = False


class FakeRepository:
    def __init__(self) -> None:
        self.rows: dict[int, Row] = {}  # by number, in creation order
        self.idempotency: dict[tuple[str, str], IdempotencyRecord] = {}
        self.checks: dict[str, str] = {}  # key id -> check value (the key_checks table)
        self.rows_read: list[int] = []  # the numbers of the rows lists read whole (get_many)

    # -- create -------------------------------------------------------------------------------

    async def add(
        self,
        *,
        tenant: str,
        connection_id: UUID,
        product_name: str | None,
        spec: ConnectionSpec,
        masked_uri: str | None,
        sealed: Sealed,
        now: datetime,
        idempotency: IdempotencyRecord | None = None,
    ) -> Connection:
        self._check_name_free(tenant, spec.config_name)
        if idempotency is not None and (tenant, idempotency.key) in self.idempotency:
            raise IdempotencyKeyTaken("this X-Idempotency key is being used")
        number = len(self.rows) + 1
        connection = Connection(
            id=connection_id,
            number=number,
            tenant=tenant,
            product_name=product_name,
            created_at=now,
            updated_at=now,
            version=1,
            **_spec_values(spec, masked_uri),
        )
        self.rows[number] = Row(connection, dict(sealed))
        if idempotency is not None:
            self.idempotency[(tenant, idempotency.key)] = idempotency
        return connection

    async def find_idempotent(self, tenant: str, key: str) -> IdempotencyRecord | None:
        return self.idempotency.get((tenant, key))

    # -- read ---------------------------------------------------------------------------------

    async def get(self, tenant: str, connection_id: UUID) -> Connection:
        return self._one(tenant, lambda row: row.connection.id == connection_id)

    async def get_by_number(self, tenant: str, number: int) -> Connection:
        return self._one(tenant, lambda row: row.connection.number == number)

    async def get_by_name(self, tenant: str, name: str) -> Connection:
        return self._one(tenant, lambda row: normalized_text(row.connection.config_name) == normalized_text(name))

    async def list_stamps(self, tenant: str, query: ListQuery) -> Page[Stamp]:
        if query.cursor or query.engine or query.host or query.database_name or query.config_name:
            raise NotImplementedError("the fake lists pages, not filters")
        items = [row.connection for row in self._live(tenant)]
        items = [c for c in items if query.product_name in (None, c.product_name)]
        items = [c for c in items if not query.unassigned or c.product_name is None]
        if query.sort_by == "configName":
            items.sort(key=lambda c: (normalized_text(c.config_name), c.number))
        else:
            items.sort(key=lambda c: (c.created_at, c.number))
        if query.sort_order == "desc":
            items.reverse()
        start = (query.page - 1) * query.limit
        page = [c.stamp for c in items[start : start + query.limit]]
        return Page(page, query.page, query.limit, len(items), None)

    async def get_many(self, tenant: str, numbers: Sequence[int]) -> list[Connection]:
        await asyncio.sleep(0)  # a store's round trip: other requests run meanwhile
        wanted = set(numbers)
        found = [row.connection for row in self._live(tenant) if row.connection.number in wanted]
        self.rows_read.extend(connection.number for connection in found)
        return found

    async def secrets(self, connection: Connection) -> dict[str, bytes]:
        row = self.rows[connection.number]
        return {name: ciphertext for name, (_, ciphertext) in row.secrets.items()}

    # -- update, delete -----------------------------------------------------------------------

    async def replace(
        self,
        current: Connection,
        spec: ConnectionSpec,
        masked_uri: str | None,
        sealed: Sealed,
        dropped: AbstractSet[str],
        now: datetime,
    ) -> Connection | None:
        row = self._as_read(current)
        if row is None:
            return None
        self._check_name_free(current.tenant, spec.config_name, but=current.number)
        row.connection = replace(
            row.connection, **_spec_values(spec, masked_uri), updated_at=now, version=current.version + 1
        )
        for name in dropped:
            row.secrets.pop(name, None)
        row.secrets.update(sealed)
        return row.connection

    async def assign_product(self, current: Connection, product_name: str, now: datetime) -> Connection | None:
        row = self._as_read(current)
        if row is None or row.connection.product_name is not None:
            return None
        row.connection = replace(row.connection, product_name=product_name, updated_at=now, version=current.version + 1)
        return row.connection

    async def soft_delete(self, current: Connection, now: datetime) -> bool:
        row = self._as_read(current)
        if row is None:
            return False
        row.deleted = True
        row.secrets.clear()
        row.connection = replace(row.connection, updated_at=now, version=current.version + 1)
        return True

    # -- keys -----------------------------------------------------------------------------------

    async def key_id_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for row in self.rows.values():
            for key_id, _ in row.secrets.values():
                counts[key_id] = counts.get(key_id, 0) + 1
        return counts

    async def secrets_not_under(self, key_id: str, after: tuple[int, str], limit: int) -> list[StoredSecret]:
        found = [
            StoredSecret(number, row.connection.id, row.connection.tenant, name, stored_key, ciphertext)
            for number, row in sorted(self.rows.items())
            for name, (stored_key, ciphertext) in sorted(row.secrets.items())
            if stored_key != key_id and (number, name) > after
        ]
        return found[:limit]

    async def reseal_batch(self, resealed: list[tuple[StoredSecret, bytes]], key_id: str) -> list[bool]:
        return [self._reseal(secret, key_id, ciphertext) for secret, ciphertext in resealed]

    def _reseal(self, secret: StoredSecret, key_id: str, ciphertext: bytes) -> bool:
        stored = self.rows[secret.connection_number].secrets
        if stored.get(secret.field, ("", b""))[1] != secret.ciphertext:
            return False  # changed since it was read: the newer write wins
        stored[secret.field] = (key_id, ciphertext)
        return True

    async def record_ssh_host_keys(self, current: Connection, ssh: SshSummary, now: datetime) -> Connection | None:
        row = self._as_read(current)
        if row is None:
            return None
        row.connection = replace(row.connection, ssh=ssh, updated_at=now, version=current.version + 1)
        return row.connection

    async def key_checks(self, ours: Mapping[str, str], now: datetime) -> dict[str, str]:
        for key_id, value in ours.items():
            self.checks.setdefault(key_id, value)  # the first value recorded for an id wins
        return {key_id: self.checks[key_id] for key_id in ours}

    # -- rules ----------------------------------------------------------------------------------

    def _live(self, tenant: str) -> list[Row]:
        return [row for row in self.rows.values() if row.connection.tenant == tenant and not row.deleted]

    def _one(self, tenant: str, matches: Callable[[Row], bool]) -> Connection:
        for row in self._live(tenant):
            if matches(row):
                return row.connection
        raise NotFound("connection not found")

    def _as_read(self, current: Connection) -> Row | None:
        """The row, if it is still the version `current` was read at (and not deleted)."""
        row = self.rows.get(current.number)
        if row is None or row.deleted or row.connection.version != current.version:
            return None
        return row

    def _check_name_free(self, tenant: str, name: str, but: int | None = None) -> None:
        key = normalized_text(name)
        for row in self._live(tenant):
            if row.connection.number != but and normalized_text(row.connection.config_name) == key:
                raise NameTaken(f"a connection named {name!r} already exists")


def _spec_values(spec: ConnectionSpec, masked_uri: str | None) -> dict[str, Any]:
    """The Connection fields a spec decides (what the store's columns hold of it)."""
    return {
        "config_name": spec.config_name,
        "engine": spec.engine,
        "host": spec.host,
        "port": spec.port,
        "database_name": spec.database_name,
        "user_name": spec.user_name,
        "schema_name": spec.schema_name,
        "ssl": spec.ssl.summary if spec.ssl else None,
        "metadata": spec.metadata,
        "options": spec.options,
        "sub_type": spec.sub_type,
        "masked_connection_string": masked_uri,
        "ssh": spec.ssh.summary if spec.ssh else None,
    }
