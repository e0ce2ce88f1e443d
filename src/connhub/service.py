"""The use cases: create, read, update, delete, test and describe connections.

Orchestrates the domain rules, the key ring, the store and the probes. Knows nothing of HTTP:
both API dialects call these functions with canonical field mappings and get domain values back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, cast
from uuid import UUID

from uuid6 import uuid7

from connhub.audit import Action, AuditLog, NoAudit
from connhub.coordination import RateLimiter, TablesCache
from connhub.coordination.local import LocalRateLimiter, LocalTablesCache
from connhub.domain import connstring, mapping
from connhub.domain.connection import (
    SECRET_FIELDS,
    Connection,
    ConnectionSpec,
    Stamp,
    Versioned,
    apply_patch,
    spec_fields,
    stored_fields,
    validate_spec,
)
from connhub.domain.errors import (
    AlreadyAssigned,
    ConnhubError,
    IdempotencyKeyTaken,
    IdempotencyMismatch,
    NameTaken,
    NotFound,
    PreconditionFailed,
    SchemaMismatch,
    SecretsUnavailable,
    TestFailed,
    ValidationFailed,
)
from connhub.domain.listing import MAX_LIMIT, ListQuery, Page, SortBy, SortOrder, parse_list_query
from connhub.domain.reports import ErrorCategory, Table, TestReport, failure_report
from connhub.domain.ssh import SECRET_NAMES, SSH_SECRET_FIELDS, SshSettings, SshSummary, trusting
from connhub.domain.text import has_control_characters
from connhub.probes.base import ProbeTarget, SshHop, SshRoute, SslMaterial
from connhub.probes.runner import ProbeRunner
from connhub.row_writes import RowState, RowWrites
from connhub.secrets import Binding, KeyRing, RequestDigests, SecretUnreadable, key_id_of
from connhub.store.repository import IdempotencyRecord, Sealed, StoredSecret
from connhub.turns import Turns

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class RowCache(Protocol[T_co]):
    """What a list answers each connection as, and the copies of it already made: a dialect's
    rendered rows (`api/rendered.py`), or `DECODED` for the domain values themselves."""

    @property
    def keeps_copies(self) -> bool:
        """Whether `keep` keeps: then concurrent lists of a tenant read its stale rows only once."""

    def held_all(self, stamps: Sequence[Stamp]) -> Sequence[T_co | None]:
        """For each stamp, in order, the copy made of that version of the connection, if one is held."""

    def keep(self, connection: Connection) -> T_co:
        """The copy of `connection` (kept, if this cache keeps any)."""


class _Decoded:
    keeps_copies = False

    def held_all(self, stamps: Sequence[Stamp]) -> list[Connection | None]:
        return [None] * len(stamps)

    def keep(self, connection: Connection) -> Connection:
        return connection


DECODED: RowCache[Connection] = _Decoded()  # holds nothing: every row listed is read and decoded


class ConnectionStore(Protocol):
    """The repository port: what the service needs of a store ("Architecture Patterns with Python"'s
    AbstractRepository). store.repository.ConnectionRepository is the real one (SQLite, PostgreSQL);
    tests/service/fakes.FakeRepository keeps it in memory with the same uniqueness and version rules.

    Writes over a read `current` answer None (or False) when the store holds a newer version.
    """

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
        """Raises NameTaken (a live connection of the tenant has that name) or IdempotencyKeyTaken."""

    async def find_idempotent(self, tenant: str, key: str) -> IdempotencyRecord | None: ...
    async def get(self, tenant: str, connection_id: UUID) -> Connection: ...  # NotFound
    async def get_by_number(self, tenant: str, number: int) -> Connection: ...
    async def get_by_name(self, tenant: str, name: str) -> Connection: ...
    async def list_stamps(self, tenant: str, query: ListQuery) -> Page[Stamp]: ...
    async def get_many(self, tenant: str, numbers: Sequence[int]) -> list[Connection]:
        """The live ones of `numbers`, in any order."""

    async def secrets(self, connection: Connection) -> dict[str, bytes]: ...

    async def replace(
        self,
        current: Connection,
        spec: ConnectionSpec,
        masked_uri: str | None,
        sealed: Sealed,
        dropped: AbstractSet[str],
        now: datetime,
    ) -> Connection | None:
        """`dropped` secrets deleted, `sealed` ones written, the others kept; NameTaken on a clash."""

    async def assign_product(self, current: Connection, product_name: str, now: datetime) -> Connection | None: ...
    async def soft_delete(self, current: Connection, now: datetime) -> bool: ...
    async def key_id_counts(self) -> dict[str, int]: ...
    async def secrets_not_under(self, key_id: str, after: tuple[int, str], limit: int) -> list[StoredSecret]: ...
    async def reseal_batch(self, resealed: list[tuple[StoredSecret, bytes]], key_id: str) -> list[bool]:
        """Each ciphertext swapped if it is still the one read, in one transaction; whether each was."""

    async def record_ssh_host_keys(self, current: Connection, ssh: SshSummary, now: datetime) -> Connection | None:
        """The host keys a first successful test trusted, stored over `current` (None if it changed)."""

    async def key_checks(self, ours: Mapping[str, str], now: datetime) -> dict[str, str]:
        """Record `ours` (key id -> check value) where the id is new; the stored value of each."""


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RotationResult:
    resealed: dict[str, int]  # previous key id -> secrets moved to the active key
    unreadable: dict[str, int]  # key id -> secrets that could not be opened (key missing)
    active_key_id: str


@dataclass(frozen=True)
class RowWrite:
    """A write of one connection, as its caller asked it: an update (`patch`), a delete or an assign."""

    connection: Connection  # as the caller read it
    if_match: str | None = None
    patch: Mapping[str, Any] | None = None
    delete: bool = False
    product_name: str | None = None
    ssh_credentials_later: bool = False  # a tunnel's credential may come in a later request (Chartbrew)


@dataclass(frozen=True)
class Written:
    """What a write left in the store; handed to the next writer of that connection in this process."""

    connection: Connection
    secrets: Mapping[str, str] | None = None  # its secrets in clear, when the writer had them all
    deleted: bool = False


RowQueue = RowState[RowWrite, Written, Written]


@dataclass(frozen=True)
class Folded:
    """Consecutive updates of one connection, applied and stored once: an outcome per writer, or
    why to retry (`stale`: another process wrote first; `split`: serve the writers one by one)."""

    outcomes: list[Written | Exception] = dataclasses.field(default_factory=list)
    written: Written | None = None
    retry: Literal["stale", "split"] | None = None


class ConnectionService:
    def __init__(
        self,
        repository: ConnectionStore,
        key_ring: KeyRing,
        probes: ProbeRunner,
        *,
        rate_limiter: RateLimiter | None = None,
        tables_cache: TablesCache | None = None,
        digests: RequestDigests | None = None,
        audit: AuditLog | None = None,
    ) -> None:
        self.repository = repository
        self.key_ring = key_ring
        self.digests = digests or RequestDigests(key_ring)
        self.probes = probes
        self.audit: AuditLog = audit or NoAudit()
        # Shared by every replica when CONNHUB_REDIS_URL is set (connhub.coordination).
        self.rate_limiter = rate_limiter or LocalRateLimiter(10)
        self.tables_cache = tables_cache or LocalTablesCache(300.0)
        self._row_writes: RowWrites[RowWrite, Written, Written] = RowWrites(self._serve_row)
        self._list_reads = Turns()

    # -- create -------------------------------------------------------------------------------

    async def create(
        self,
        tenant: str,
        fields: Mapping[str, Any],
        product_name: str | None,
        *,
        idempotency_key: str | None = None,
        validate: bool = False,
        ssh_credentials_later: bool = False,
    ) -> Connection:
        """Store a new connection; with `validate`, only if a live test of it succeeds.

        `ssh_credentials_later`: a tunnel may come without its credential, which a later request
        uploads (Chartbrew's form sends the key file after the create).
        """
        spec = validate_spec(fields, ssh_credentials_required=not ssh_credentials_later)
        idempotency = None
        if idempotency_key:
            canonical = _canonical(fields, product_name)
            digest = self.digests.digest(canonical)
            replay = await self._replay(tenant, idempotency_key, canonical)
            if replay is not None:
                return replay
        if validate:
            report = await self.probes.test(_target(spec))
            if not report.ok:
                raise TestFailed("the connection test failed; nothing was stored", report)
            spec = _trusting_seen_keys(spec, report)
        connection_id = uuid7()
        if idempotency_key:
            idempotency = IdempotencyRecord(idempotency_key, digest, connection_id)
        try:
            created = await self.repository.add(
                tenant=tenant,
                connection_id=connection_id,
                product_name=product_name,
                spec=spec,
                masked_uri=_masked_uri(spec),
                sealed=self._seal(tenant, connection_id, spec.secrets()),
                now=utc_now(),
                idempotency=idempotency,
            )
        except (NameTaken, IdempotencyKeyTaken):
            # A concurrent request with the same key won the race: answer as it did.
            if idempotency_key and (replay := await self._replay(tenant, idempotency_key, canonical)):
                return replay
            raise
        self.audit.record(tenant, Action.CREATE, created.id, fields=field_names(spec_fields(spec)))
        return created

    async def _replay(self, tenant: str, key: str, canonical: bytes) -> Connection | None:
        previous = await self.repository.find_idempotent(tenant, key)
        if previous is None:
            return None
        if not self.digests.matches(canonical, previous.request_hash):
            raise IdempotencyMismatch("this X-Idempotency key was used with another request body")
        return await self.repository.get(tenant, previous.connection_id)

    async def duplicate(self, tenant: str, source: Connection, name: str) -> Connection:
        """A copy of `source` named `name`, its secrets re-sealed for the new record."""
        fields = {**spec_fields(await self._open_spec(source)), "configName": name}
        return await self.create(tenant, fields, source.product_name, ssh_credentials_later=True)

    # -- read ---------------------------------------------------------------------------------

    async def get(self, tenant: str, connection_id: UUID) -> Connection:
        return await self.repository.get(tenant, connection_id)

    async def get_by_number(self, tenant: str, number: int) -> Connection:
        return await self.repository.get_by_number(tenant, number)

    async def get_by_name_or_id(self, tenant: str, name_or_id: str) -> Connection:
        if has_control_characters(name_or_id):  # no name holds one (and PostgreSQL cannot compare a NUL)
            raise ValidationFailed({"id": "must not contain control characters"})
        try:
            return await self.repository.get(tenant, UUID(name_or_id))
        except ValueError:
            return await self.repository.get_by_name(tenant, name_or_id)

    async def list_connections(self, tenant: str, query: ListQuery, rows: RowCache[T]) -> Page[T]:
        """One page of `query`, each connection as `rows` holds it: a row is read from the store
        only when `rows` has no copy of its current version (`DECODED` holds none)."""
        stamps = await self.repository.list_stamps(tenant, query)
        held = await self._held(tenant, stamps.items, rows)
        return Page(held, stamps.page, stamps.limit, stamps.total, stamps.next_cursor)

    async def list_every(self, tenant: str, sort_by: SortBy, sort_order: SortOrder, rows: RowCache[T]) -> list[T]:
        """Every connection of `tenant` in this order, read a page of the most at a time (keyset paging)."""
        params = {"limit": str(MAX_LIMIT), "sortBy": sort_by, "sortOrder": sort_order}
        found: list[T] = []
        while True:
            page = await self.list_connections(tenant, parse_list_query(params, {}, None), rows)
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            params["cursor"] = page.next_cursor

    async def _held(self, tenant: str, stamps: list[Stamp], rows: RowCache[T]) -> list[T]:
        """`stamps` as `rows` holds them, the missing ones read in one go. A row deleted between the
        two reads is left out; one updated between them is answered at its newer version."""
        held = rows.held_all(stamps)
        if None not in held:
            return cast(list[T], list(held))
        # One list of a tenant at a time reads its stale rows: 32 lists of 2,000 cold rows arriving
        # together would otherwise decode and render the same 64,000 rows (seconds of CPU, 300 MB).
        async with self._list_reads.turn(tenant) if rows.keeps_copies else nullcontext():
            held = rows.held_all(stamps)  # with what the list before this one read
            missing = [stamp.number for stamp, row in zip(stamps, held, strict=True) if row is None]
            if missing:
                read = {c.number: rows.keep(c) for c in await self.repository.get_many(tenant, missing)}
                held = [read.get(stamp.number) if row is None else row for stamp, row in zip(stamps, held, strict=True)]
        return [row for row in held if row is not None]

    # -- update, delete -----------------------------------------------------------------------

    async def update(
        self,
        tenant: str,
        connection: Connection,
        patch: Mapping[str, Any],
        if_match: str | None = None,
        *,
        ssh_credentials_later: bool = False,
    ) -> Connection:
        """Apply `patch` (absent keeps, null clears) after the same validation as create.

        Concurrent updates of one connection are stored together (see `row_writes`): each is
        applied in arrival order, and each answers the connection as that one stored write left it.
        """
        updated = await self._patched(connection, patch, if_match, ssh_credentials_later)
        self.audit.record(tenant, Action.UPDATE, updated.id, fields=_changed_names(connection, updated, patch))
        return updated

    async def _patched(
        self, connection: Connection, patch: Mapping[str, Any], if_match: str | None, ssh_credentials_later: bool
    ) -> Connection:
        write = RowWrite(connection, if_match, patch=patch, ssh_credentials_later=ssh_credentials_later)
        written = await self._row_writes.submit(connection.id, write)
        await self.tables_cache.drop(connection.id)
        return written.connection

    async def attach_ssl_files(
        self, tenant: str, connection: Connection, files: Mapping[str, str], ssh_private_key: str | None = None
    ) -> Connection:
        """Store uploaded PEMs (`ca`, `cert`, `key`) in the connection's ssl settings, and an
        uploaded SSH private key in its tunnel's (the passphrase may have come before it)."""
        patch: dict[str, Any] = {}
        if files:
            mode = connection.ssl.mode.value if connection.ssl else "require"
            patch["ssl"] = {"mode": mode, **files}
        if ssh_private_key is not None:
            if connection.ssh is None:
                raise ValidationFailed({"ssh.privateKey": "the connection has no SSH tunnel: turn it on first"})
            patch["ssh"] = {"privateKey": ssh_private_key}
        updated = await self._patched(connection, patch, None, ssh_credentials_later=True)
        self.audit.record(tenant, Action.FILE_UPLOAD, updated.id, fields=_changed_names(connection, updated, patch))
        return updated

    async def delete(self, tenant: str, connection: Connection, if_match: str | None = None) -> None:
        await self._row_writes.submit(connection.id, RowWrite(connection, if_match, delete=True))
        await self.tables_cache.drop(connection.id)
        self.audit.record(tenant, Action.DELETE, connection.id)

    async def assign(self, tenant: str, connection: Connection, product_name: str) -> Connection:
        assign = RowWrite(connection, product_name=product_name)
        written = await self._row_writes.submit(connection.id, assign)
        self.audit.record(tenant, Action.ASSIGN, written.connection.id, fields=("productName",))
        return written.connection

    # -- the one conflict policy of every write ------------------------------------------------
    #
    # Without If-Match the last writer wins: a write is redone on the newest version, never a 412.
    # With If-Match only the version it names may be written: exactly one writer of a version wins,
    # the others get 412. A connection deleted meanwhile is a 404. Writes of one connection in this
    # process queue per connection (`row_writes`) and consecutive updates share one stored write;
    # across processes the store's version check decides, and each lost round is another's win.

    async def _serve_row(self, row: RowQueue, batch: list[RowWrite]) -> list[Written | Exception]:
        outcomes: list[Written | Exception] = []
        start = 0
        while start < len(batch):
            end = start + 1
            if batch[start].patch is not None:  # consecutive updates fold into one stored write
                while end < len(batch) and batch[end].patch is not None:
                    end += 1
                outcomes += await self._updates(row, batch[start:end])
            else:
                outcomes.append(await _outcome(self._delete_or_assign(row, batch[start])))
            start = end
        return outcomes

    async def _updates(self, row: RowQueue, writes: list[RowWrite]) -> list[Written | Exception]:
        """Apply `writes` in order on the newest version and store the result once."""
        try:
            base, known = _newest(row.latest, writes)
            while True:
                folded = await self._fold(base, known, writes)
                if folded.retry == "split":  # serve the writers one by one, to tell who is refused
                    return [outcome for write in writes for outcome in await self._updates(row, [write])]
                if folded.retry == "stale":  # another process wrote first: redo on its version
                    base, known = await self._newer(base), None
                    continue
                if folded.written is not None:
                    row.latest = folded.written
                return folded.outcomes
        except NotFound as gone:
            return [NotFound(gone.message) for _ in writes]

    async def _fold(self, base: Connection, known: Mapping[str, str] | None, writes: list[RowWrite]) -> Folded:
        """Each write applied in turn on `base`, the result stored once (or why it must be retried)."""
        together = len(writes) > 1
        # The first writer's replaced secrets need not open (it may be replacing one that no longer
        # does); every later writer builds on the state it left.
        try:
            opened, stored = await self._open_secrets(base, frozenset(_replaced_secrets(writes[0].patch or {})), known)
        except SecretsUnavailable as unreadable:
            return Folded(retry="split") if together else Folded([unreadable])
        state, spec, refused = _fields_of(base, opened), None, dict[int, Exception]()
        for position, write in enumerate(writes):
            try:
                _check_etag(base, write.if_match, written_since=spec is not None)
                merged = apply_patch(state, write.patch or {})
                state, spec = merged, validate_spec(merged, ssh_credentials_required=not write.ssh_credentials_later)
            except PreconditionFailed as precondition:
                refused[position] = precondition
            except ValidationFailed as invalid:
                # Judged on a stale read (a delete wiped the secrets meanwhile, say), it would mislead.
                if (await self._newer(base)).version != base.version:
                    return Folded(retry="stale")
                if position == 0 and together:  # the others were opened for this one's patch
                    return Folded(retry="split")
                refused[position] = invalid
        if spec is None:
            return Folded([refused[position] for position in range(len(writes))])
        try:
            written = await self._store_update(base, spec, opened, stored)
        except NameTaken as clash:
            return Folded(retry="split") if together else Folded([clash])
        if written is None:
            return Folded(retry="stale")
        return Folded([refused.get(position, written) for position in range(len(writes))], written)

    async def _store_update(
        self, base: Connection, spec: ConnectionSpec, opened: Mapping[str, str], stored: frozenset[str]
    ) -> Written | None:
        # Only secrets whose value changed are sealed and written again: a metadata patch leaves
        # every stored ciphertext (still bound to this tenant, record and field) alone.
        secrets = spec.secrets()
        changed = {field: value for field, value in secrets.items() if opened.get(field) != value}
        updated = await self.repository.replace(
            base,
            spec,
            _masked_uri(spec),
            self._seal(base.tenant, base.id, changed),
            (stored - secrets.keys()) | changed.keys(),
            utc_now(),
        )
        return None if updated is None else Written(updated, secrets)

    async def _delete_or_assign(self, row: RowQueue, write: RowWrite) -> Written:
        current, known = _newest(row.latest, [write])
        while True:
            _check_etag(current, write.if_match)
            if write.delete:
                deleted = await self.repository.soft_delete(current, utc_now())
                written = Written(current, deleted=True) if deleted else None
            else:
                if current.product_name is not None:
                    raise AlreadyAssigned("the connection is already assigned to a product")
                assigned = await self.repository.assign_product(current, write.product_name or "", utc_now())
                written = None if assigned is None else Written(assigned, known)  # the secrets are unchanged
            if written is not None:
                row.latest = written
                return written
            current, known = await self._newer(current), None

    async def _newer(self, connection: Connection) -> Connection:
        """The store's version of `connection` (NotFound when it is gone)."""
        return await self.repository.get(connection.tenant, connection.id)

    # -- live access --------------------------------------------------------------------------

    async def test_saved(self, tenant: str, connection: Connection) -> TestReport:
        report = await self.probe_saved(tenant, connection)
        category = report.error.category.value if report.error else None
        self.audit.record(
            tenant, Action.TEST, connection.id, details={"status": report.status, "category": category}
        )
        return report

    async def probe_saved(self, tenant: str, connection: Connection) -> TestReport:
        """A live test of a stored connection within the test rate limit (RateLimited past it), unaudited:
        the scheduled health checks call it, and keep their own history."""
        await self.rate_limiter.take(tenant, connection.id)
        try:
            spec = await self._open_spec(connection)
        except SecretsUnavailable as error:
            return failure_report(ErrorCategory.DECRYPT_FAILED, error.message)
        report = await self.probes.test(_target(spec))
        await self._trust_on_first_use(connection, spec, report)
        return report

    async def test_unsaved(self, fields: Mapping[str, Any]) -> TestReport:
        return await self.probes.test(_target(validate_spec(fields)))

    async def discover_unsaved_tables(self, fields: Mapping[str, Any]) -> list[Table] | None:
        """The tables of an unsaved connection (nothing is stored or cached); None if unreadable."""
        tables, _ = await self.probes.discover_tables(_target(validate_spec(fields)))
        return tables

    async def discover_tables(
        self, tenant: str, connection: Connection, refresh: bool = False, schemas: tuple[str, ...] = ()
    ) -> list[Table]:
        """The connection's tables (and those of the other `schemas`, named `schema.table`): cached,
        else read live. A refresh (past the cache, on demand) counts against the connection's tests
        a minute, as a test does."""
        if refresh:
            await self.rate_limiter.take(tenant, connection.id)
        elif (cached := await self.tables_cache.lookup(connection, schemas)) is not None:
            self.audit.record(tenant, Action.SCHEMA_READ, connection.id, details={"source": "cache"})
            return cached
        try:
            spec = await self._open_spec(connection)
        except SecretsUnavailable as error:
            report = failure_report(ErrorCategory.DECRYPT_FAILED, error.message)
            raise TestFailed("the stored secrets cannot be opened", report) from None
        tables, report = await self.probes.discover_tables(dataclasses.replace(_target(spec), schemas=schemas))
        self.audit.record(
            tenant,
            Action.SCHEMA_READ,
            connection.id,
            details={"source": "database", "status": report.status, "tables": None if tables is None else len(tables)},
        )
        if tables is None:
            raise TestFailed("the database could not be read", report)
        connection = await self._trust_on_first_use(connection, spec, report)
        await self.tables_cache.put(connection, tables, schemas)
        return tables

    def cached_tables(self, connection: Versioned) -> list[Table] | None:
        """The tables the last discovery found (a test's or a read's), while cached; never a live read."""
        return self.tables_cache.get(connection)

    async def _trust_on_first_use(self, connection: Connection, spec: ConnectionSpec, report: TestReport) -> Connection:
        """After a successful test through a tunnel, record the host keys seen where none was trusted.

        Only over the version that was tested: if anyone wrote meanwhile (the host may have moved),
        nothing is recorded and the next test decides.
        """
        trusted = _trusting_seen_keys(spec, report)
        if trusted.ssh is None or trusted.ssh == spec.ssh:
            return connection
        # Optimistic: stored only over the version tested (a writer in between wins; the next test
        # records then). Writers of this process that kept the older version retry on the newer.
        recorded = await self.repository.record_ssh_host_keys(connection, trusted.ssh.summary, utc_now())
        if recorded is None:
            return connection
        await self.tables_cache.drop(connection.id)
        return recorded

    async def validate_schema(self, tenant: str, mapped_fields: mapping.MappedFields) -> None:
        """Check that every mapped data source, table and field exists; raise listing every one
        missing. Sources are read concurrently, so one that hangs costs one probe timeout."""
        mapping.check_limits(mapped_fields)
        per_source = await asyncio.gather(
            *(self._check_source(tenant, source, tables) for source, tables in mapped_fields.items())
        )
        found = [finding for source_findings in per_source for finding in source_findings]
        if found:
            raise SchemaMismatch("Schema validation found inconsistencies.", found)

    async def _check_source(
        self, tenant: str, source: str, tables: Mapping[str, Sequence[str]]
    ) -> list[mapping.Finding]:
        try:
            connection = await self.get_by_name_or_id(tenant, source)
        except NotFound:
            return [mapping.Finding(mapping.FindingType.DATA_SOURCE_NOT_FOUND, source)]
        try:
            others = mapping.schemas_named(connection, tables)
            discovered = await self.discover_tables(tenant, connection, schemas=others)
        except TestFailed:
            return [mapping.Finding(mapping.FindingType.DATA_SOURCE_DOWN, source)]
        return mapping.findings(connection, source, tables, discovered)

    # -- keys ---------------------------------------------------------------------------------

    async def rotate_keys(
        self, batch_size: int = 500, progress: Callable[[RotationResult], None] | None = None
    ) -> RotationResult:
        """Re-seal every secret under the active key, batch by batch; safe to interrupt and rerun.

        `progress` gets the counts so far after each batch.
        """
        active = self.key_ring.active_id
        resealed: dict[str, int] = {}
        unreadable: dict[str, int] = {}
        by_tenant: dict[str, int] = {}
        after = (0, "")
        while batch := await self.repository.secrets_not_under(active, after, batch_size):
            sealed = []
            for secret in batch:
                binding = Binding(secret.tenant, str(secret.connection_id), secret.field)
                try:
                    plaintext = self.key_ring.open(secret.ciphertext, binding)
                except SecretUnreadable:
                    unreadable[secret.key_id] = unreadable.get(secret.key_id, 0) + 1
                    continue
                sealed.append((secret, self.key_ring.seal(plaintext, binding)))
            # One transaction a batch (was one a secret: 34 s for 1,500 secrets on a busy machine).
            for (secret, _), swapped in zip(sealed, await self.repository.reseal_batch(sealed, active), strict=True):
                if swapped:
                    resealed[secret.key_id] = resealed.get(secret.key_id, 0) + 1
                    by_tenant[secret.tenant] = by_tenant.get(secret.tenant, 0) + 1
            after = (batch[-1].connection_number, batch[-1].field)
            if progress is not None:
                progress(RotationResult(resealed, unreadable, active))
        for tenant, count in sorted(by_tenant.items()):  # each organization sees what moved of its own
            self.audit.record(tenant, Action.KEY_ROTATION, details={"activeKeyId": active, "resealed": count})
        return RotationResult(resealed, unreadable, active)

    async def key_mismatches(self) -> list[str]:
        """Key ids whose bytes here differ from those the store first saw under that id.

        Each process records its keys' check values (the first value per id wins); a process whose
        bytes differ for a known id would seal secrets no other can open, so readiness names it.
        """
        stored = await self.repository.key_checks(self.key_ring.check_values(), utc_now())
        return sorted(key_id for key_id, value in self.key_ring.check_values().items() if stored[key_id] != value)

    async def missing_key_ids(self) -> list[str]:
        """Key ids that seal stored secrets but are not in the key ring (readiness names them)."""
        in_use = await self.repository.key_id_counts()
        return sorted(set(in_use) - set(self.key_ring.key_ids))

    # -- secrets ------------------------------------------------------------------------------

    def _seal(self, tenant: str, connection_id: UUID, secrets: Mapping[str, str]) -> Sealed:
        sealed = {}
        for field, plaintext in secrets.items():
            blob = self.key_ring.seal(plaintext, Binding(tenant, str(connection_id), field))
            sealed[field] = (key_id_of(blob), blob)
        return sealed

    async def _open_secrets(
        self, connection: Connection, skip: frozenset[str] = frozenset(), known: Mapping[str, str] | None = None
    ) -> tuple[dict[str, str], frozenset[str]]:
        """The stored secrets opened (but those in `skip`), and the names of all stored.

        `known`: the secrets of this version in clear, as the writer before wrote them (no store read).
        """
        if known is not None:
            return {field: value for field, value in known.items() if field not in skip}, frozenset(known)
        stored = await self.repository.secrets(connection)
        opened: dict[str, str] = {}
        for field, blob in stored.items():
            if field in skip:
                continue
            try:
                opened[field] = self.key_ring.open(
                    blob, Binding(connection.tenant, str(connection.id), field)
                )
            except SecretUnreadable as error:
                raise SecretsUnavailable(_unreadable_message(field, error)) from None
        return opened, frozenset(stored)

    async def _open_spec(self, connection: Connection) -> ConnectionSpec:
        opened, _ = await self._open_secrets(connection)
        # As stored: a tunnel may still wait for the credential a later request uploads.
        return validate_spec(_fields_of(connection, opened), ssh_credentials_required=False)


def _unreadable_message(field: str, error: SecretUnreadable) -> str:
    if not error.key_loaded:
        return f"a stored secret ({field}) is sealed under key {error.key_id!r}, which is not loaded"
    return (
        f"a stored secret ({field}) does not open for this record under key {error.key_id!r} (the key is "
        "loaded: the secret was sealed for another record, or altered); send it again"
    )


def _fields_of(connection: Connection, secrets: Mapping[str, str]) -> dict[str, Any]:
    """The stored connection as canonical fields (`stored_fields`), with its opened `secrets` put back."""
    fields = stored_fields(connection)
    fields |= {name: secrets[name] for name in ("password", "connectionString") if name in secrets}
    if "ssl" in fields:
        fields["ssl"] |= {name: secrets[f"ssl.{name}"] for name in ("ca", "cert", "key") if f"ssl.{name}" in secrets}
    if connection.ssh is not None:
        fields["ssh"] = connection.ssh.fields(secrets)  # the block again, its credentials in place
    return fields


def field_names(fields: Mapping[str, Any]) -> set[str]:
    """The names of canonical `fields` as the audit shows them (`ssl` one level down: `ssl.mode`...)."""
    names = {name for name in fields if name != "ssl"}
    ssl = fields.get("ssl")
    if isinstance(ssl, Mapping):
        names |= {f"ssl.{name}" for name in ssl}
    return names


def _flat(fields: Mapping[str, Any]) -> dict[str, Any]:
    flat = {name: value for name, value in fields.items() if name != "ssl"}
    if isinstance(ssl := fields.get("ssl"), Mapping):
        flat |= {f"ssl.{name}": value for name, value in ssl.items()}
    return flat


def _changed_names(before: Connection, after: Connection, patch: Mapping[str, Any]) -> set[str]:
    """Names of the fields an update changed: the stored fields that differ, and every secret the
    patch set or cleared (not opened to compare: a secret sent counts as written)."""
    old, new = _flat(stored_fields(before)), _flat(stored_fields(after))
    changed = {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}
    return changed | _replaced_secrets(patch)


def _replaced_secrets(patch: Mapping[str, Any]) -> set[str]:
    """Secret fields that `patch` sets or clears, so their stored values need not be opened."""
    replaced = {name for name in ("password", "connectionString") if name in patch}
    ssl = patch.get("ssl", {}) if "ssl" in patch else {}
    if "ssl" in patch and ssl is None:
        replaced |= {"ssl.ca", "ssl.cert", "ssl.key"}
    elif isinstance(ssl, Mapping):
        replaced |= {f"ssl.{name}" for name in ("ca", "cert", "key") if name in ssl}
    replaced |= _replaced_ssh_secrets(patch)
    return replaced & set(SECRET_FIELDS)


def _replaced_ssh_secrets(patch: Mapping[str, Any]) -> set[str]:
    if "ssh" not in patch:
        return set()
    ssh = patch["ssh"]
    if ssh is None:
        return set(SSH_SECRET_FIELDS)
    if not isinstance(ssh, Mapping):
        return set()
    replaced = {f"ssh.{name}" for name in SECRET_NAMES if name in ssh}
    jump = ssh.get("jumpHost", {})
    if "jumpHost" in ssh and jump is None:
        replaced |= {f"ssh.jumpHost.{name}" for name in SECRET_NAMES}
    elif isinstance(jump, Mapping):
        replaced |= {f"ssh.jumpHost.{name}" for name in SECRET_NAMES if name in jump}
    return replaced


def _check_etag(connection: Connection, if_match: str | None, written_since: bool = False) -> None:
    """PreconditionFailed unless If-Match names `connection`'s version. RFC 9110 13.1.1: `*`
    matches any current record; otherwise any tag of the list that is the record's ETag, compared
    strongly (a weak W/ tag never matches). `written_since`: an earlier write of the same batch
    changed it, so no tag the caller holds can name it."""
    if if_match is None or if_match.strip() == "*":
        return
    if written_since:
        raise PreconditionFailed("the connection changed since it was read (ETag mismatch)")
    tags = {tag.strip() for tag in if_match.split(",")}  # our ETags hold no comma
    if connection.etag not in tags:
        raise PreconditionFailed("the connection changed since it was read (ETag mismatch)")


def _target(spec: ConnectionSpec) -> ProbeTarget:
    ssl = None
    if spec.ssl is not None:
        ssl = SslMaterial(spec.ssl.mode.value, spec.ssl.ca, spec.ssl.cert, spec.ssl.key)
    return ProbeTarget(
        engine=spec.engine.value,
        host=spec.host,
        port=spec.port,
        database=spec.database_name,
        user=spec.user_name,
        password=spec.password,
        schema_name=spec.schema_name,
        ssl=ssl,
        options=spec.options,
        ssh=_route(spec.ssh) if spec.ssh is not None else None,
    )


def _route(ssh: SshSettings) -> SshRoute:
    """The hops a probe passes through, credentials opened, a jump host's inherited ones resolved."""
    assert ssh.user_name is not None  # validation requires the bastion's user name
    bastion = SshHop(ssh.host, ssh.port, ssh.user_name, ssh.password, ssh.private_key, ssh.passphrase, ssh.host_key)
    jump = ssh.jump_hop()
    if jump is None or ssh.jump_host is None:
        return SshRoute(bastion)
    assert jump.user_name is not None
    own_credentials = "ssh.jumpHost." if ssh.jump_host.has_credentials else "ssh."
    hop = SshHop(
        jump.host,
        jump.port,
        jump.user_name,
        jump.password,
        jump.private_key,
        jump.passphrase,
        jump.host_key,
        field_prefix="ssh.jumpHost.",
        credentials_prefix=own_credentials,
    )
    return SshRoute(bastion, hop)


def _trusting_seen_keys(spec: ConnectionSpec, report: TestReport) -> ConnectionSpec:
    """`spec` with the host keys a successful test saw trusted where none was (trust on first use)."""
    if not report.ok or spec.ssh is None or report.ssh is None:
        return spec
    seen = report.ssh
    bastion_key = seen.host_key.host_key if seen.host_key else None
    jump_key = seen.jump_host_key.host_key if seen.jump_host_key else None
    return replace(spec, ssh=trusting(spec.ssh, bastion_key, jump_key))


def _masked_uri(spec: ConnectionSpec) -> str | None:
    return connstring.masked(spec.connection_string) if spec.connection_string else None


def _canonical(fields: Mapping[str, Any], product_name: str | None) -> bytes:
    return json.dumps([fields, product_name], sort_keys=True, separators=(",", ":"), default=str).encode()


def _newest(latest: Written | None, writes: list[RowWrite]) -> tuple[Connection, Mapping[str, str] | None]:
    """The newest version known here: the last write of this queue, or the newest the callers read.

    NotFound when the last write was a delete. The secrets come along when the last write had them.
    """
    if latest is not None and latest.deleted:
        raise NotFound("connection not found")
    read = max((write.connection for write in writes), key=lambda connection: connection.version)
    if latest is not None and latest.connection.version >= read.version:
        return latest.connection, latest.secrets
    return read, None


async def _outcome(write: Awaitable[Written]) -> Written | Exception:
    try:
        return await write
    except ConnhubError as refused:
        return refused
