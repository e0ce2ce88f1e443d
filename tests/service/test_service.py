"""The use cases against an in-memory fake repository (tests/service/fakes.py): no store, no HTTP.

Next to the real-store tests (tests/api, tests/store), these pin what the service itself decides:
validation before storing, names, idempotent creates, patches (absent keeps, null clears), If-Match,
the one conflict policy (last writer wins without If-Match), delete, assign, key rotation.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import orjson
import pytest

from connhub.api.rendered import RenderedRows
from connhub.domain.connection import Connection
from connhub.domain.errors import (
    AlreadyAssigned,
    IdempotencyMismatch,
    NameTaken,
    NotFound,
    PreconditionFailed,
    ValidationFailed,
)
from connhub.domain.listing import ListQuery
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing, new_key_entry
from connhub.service import DECODED, ConnectionService
from tests.service.fakes import FakeRepository

TENANT = "acme"
OLD_KEY, NEW_KEY = new_key_entry("old"), new_key_entry("new")


def body(**changes: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "configName": "orders",
        "type": "POSTGRESQL",
        "host": "db.example.com",
        "port": 5432,
        "databaseName": "shop",
        "userName": "app",
        "password": "s3cret-pw",
    }
    return {**fields, **changes}


def make_service(repository: FakeRepository, keys: str = OLD_KEY) -> ConnectionService:
    return ConnectionService(repository, KeyRing.parse(keys), ProbeRunner(ProbePolicy()))


@pytest.fixture
def repository() -> FakeRepository:
    return FakeRepository()


@pytest.fixture
def service(repository: FakeRepository) -> ConnectionService:
    return make_service(repository)


async def password_of(service: ConnectionService, connection: Connection) -> str:
    opened, _ = await service._open_secrets(connection)
    return opened["password"]


# -- create -----------------------------------------------------------------------------------


async def test_create_stores_the_fields_and_seals_the_password(
    service: ConnectionService, repository: FakeRepository
) -> None:
    created = await service.create(TENANT, body(), "reports")

    assert (created.config_name, created.host, created.product_name, created.version) == (
        "orders",
        "db.example.com",
        "reports",
        1,
    )
    assert b"s3cret-pw" not in (await repository.secrets(created))["password"]
    assert await password_of(service, created) == "s3cret-pw"


async def test_a_bad_body_stores_nothing_and_names_its_fields(
    service: ConnectionService, repository: FakeRepository
) -> None:
    with pytest.raises(ValidationFailed) as refused:
        await service.create(TENANT, body(port=0, host=None), None)

    assert set(refused.value.fields) == {"port", "host"}
    assert repository.rows == {}


async def test_names_are_unique_per_tenant_case_and_space_insensitively(service: ConnectionService) -> None:
    await service.create(TENANT, body(), None)

    with pytest.raises(NameTaken):
        await service.create(TENANT, body(configName="  ORDERS "), None)
    other_tenant = await service.create("globex", body(), None)
    assert other_tenant.config_name == "orders"


async def test_a_deleted_connections_name_is_free_again(service: ConnectionService) -> None:
    first = await service.create(TENANT, body(), None)
    await service.delete(TENANT, first)

    again = await service.create(TENANT, body(), None)

    assert again.id != first.id


async def test_duplicate_copies_secrets_under_a_new_name(service: ConnectionService) -> None:
    source = await service.create(TENANT, body(), "reports")

    copy = await service.duplicate(TENANT, source, "orders (copy)")

    assert (copy.config_name, copy.host, copy.product_name) == ("orders (copy)", source.host, "reports")
    assert await password_of(service, copy) == "s3cret-pw"
    with pytest.raises(NameTaken):
        await service.duplicate(TENANT, source, "orders")


# -- idempotency ------------------------------------------------------------------------------


async def test_a_repeated_idempotency_key_answers_the_first_connection(
    service: ConnectionService, repository: FakeRepository
) -> None:
    first = await service.create(TENANT, body(), "reports", idempotency_key="k-1")
    repeat = await service.create(TENANT, body(), "reports", idempotency_key="k-1")

    assert repeat.id == first.id
    assert len(repository.rows) == 1


async def test_an_idempotency_key_reused_with_another_body_is_refused(service: ConnectionService) -> None:
    await service.create(TENANT, body(), "reports", idempotency_key="k-1")

    with pytest.raises(IdempotencyMismatch):
        await service.create(TENANT, body(configName="other"), "reports", idempotency_key="k-1")


async def test_idempotency_keys_are_per_tenant(service: ConnectionService) -> None:
    first = await service.create(TENANT, body(), None, idempotency_key="k-1")
    second = await service.create("globex", body(), None, idempotency_key="k-1")

    assert first.id != second.id


# -- update -----------------------------------------------------------------------------------


async def test_an_absent_field_is_kept_and_null_clears_an_optional_one(service: ConnectionService) -> None:
    created = await service.create(TENANT, body(schema="sales", metadata={"team": "data"}), None)

    updated = await service.update(TENANT, created, {"host": "db2.example.com", "metadata": None})

    assert (updated.host, updated.schema_name, updated.metadata) == ("db2.example.com", "sales", None)
    assert updated.version == 2
    assert await password_of(service, updated) == "s3cret-pw"  # not sent: kept


async def test_null_on_a_required_field_is_refused_and_changes_nothing(
    service: ConnectionService, repository: FakeRepository
) -> None:
    created = await service.create(TENANT, body(), None)

    with pytest.raises(ValidationFailed) as refused:
        await service.update(TENANT, created, {"password": None})

    assert set(refused.value.fields) == {"password"}
    assert await repository.get(TENANT, created.id) == created


async def test_a_rename_onto_another_connections_name_is_refused(service: ConnectionService) -> None:
    await service.create(TENANT, body(), None)
    other = await service.create(TENANT, body(configName="billing"), None)

    with pytest.raises(NameTaken):
        await service.update(TENANT, other, {"configName": "Orders"})


async def test_if_match_with_the_current_etag_writes_and_a_stale_one_is_412(service: ConnectionService) -> None:
    created = await service.create(TENANT, body(), None)
    updated = await service.update(TENANT, created, {"port": 5433}, if_match=created.etag)

    with pytest.raises(PreconditionFailed):
        await service.update(TENANT, updated, {"port": 5434}, if_match=created.etag)
    assert (await service.get(TENANT, created.id)).port == 5433


async def test_without_if_match_the_last_writer_wins_over_a_stale_read(service: ConnectionService) -> None:
    created = await service.create(TENANT, body(), None)
    await service.update(TENANT, created, {"port": 5433})

    # `created` is now stale: the write is redone on the newest version, never a 412.
    updated = await service.update(TENANT, created, {"host": "db2.example.com"})

    assert (updated.host, updated.port, updated.version) == ("db2.example.com", 5433, 3)


async def test_concurrent_writers_without_if_match_all_land_in_arrival_order(service: ConnectionService) -> None:
    created = await service.create(TENANT, body(), None)

    written = await asyncio.gather(
        *(service.update(TENANT, created, {"metadata": {"writer": str(n)}}) for n in range(10))
    )

    # Every writer lands (none is a 412); queued writes are applied in arrival order, so the last wins.
    stored = await service.get(TENANT, created.id)
    assert stored.metadata == {"writer": "9"}
    assert all(isinstance(c, Connection) for c in written) and stored.version == max(c.version for c in written)


async def test_exactly_one_writer_of_a_version_wins_with_if_match(service: ConnectionService) -> None:
    created = await service.create(TENANT, body(), None)

    outcomes = await asyncio.gather(
        *(service.update(TENANT, created, {"port": 6000 + n}, if_match=created.etag) for n in range(5)),
        return_exceptions=True,
    )

    assert sum(isinstance(outcome, Connection) for outcome in outcomes) == 1
    assert sum(isinstance(outcome, PreconditionFailed) for outcome in outcomes) == 4


async def test_a_write_over_another_processes_newer_version_is_redone_on_it(
    service: ConnectionService, repository: FakeRepository
) -> None:
    created = await service.create(TENANT, body(), None)
    # Another process (its own service, same store) writes in between.
    await make_service(repository).update(TENANT, created, {"port": 5433})

    updated = await service.update(TENANT, created, {"host": "db2.example.com"})

    assert (updated.host, updated.port, updated.version) == ("db2.example.com", 5433, 3)


async def test_an_update_of_a_deleted_connection_is_not_found(
    service: ConnectionService, repository: FakeRepository
) -> None:
    created = await service.create(TENANT, body(), None)
    await make_service(repository).delete(TENANT, created)

    with pytest.raises(NotFound):
        await service.update(TENANT, created, {"port": 5433})


# -- delete, assign -----------------------------------------------------------------------------


async def test_delete_wipes_the_secrets_and_hides_the_connection(
    service: ConnectionService, repository: FakeRepository
) -> None:
    created = await service.create(TENANT, body(), None)

    await service.delete(TENANT, created)

    with pytest.raises(NotFound):
        await service.get(TENANT, created.id)
    assert repository.rows[created.number].secrets == {}
    assert (await service.list_connections(TENANT, ListQuery(), DECODED)).total == 0


async def test_delete_with_a_stale_if_match_is_412_and_keeps_the_connection(service: ConnectionService) -> None:
    created = await service.create(TENANT, body(), None)
    updated = await service.update(TENANT, created, {"port": 5433})

    with pytest.raises(PreconditionFailed):
        await service.delete(TENANT, updated, if_match=created.etag)
    assert (await service.get(TENANT, created.id)).version == 2


async def test_assign_sets_the_product_once(service: ConnectionService) -> None:
    created = await service.create(TENANT, body(), None)

    assigned = await service.assign(TENANT, created, "reports")

    assert assigned.product_name == "reports"
    with pytest.raises(AlreadyAssigned):
        await service.assign(TENANT, assigned, "billing")
    unassigned = await service.list_connections(TENANT, replace(ListQuery(), unassigned=True), DECODED)
    assert unassigned.total == 0


async def test_assign_after_an_unrelated_change_still_assigns(service: ConnectionService) -> None:
    created = await service.create(TENANT, body(), None)
    await service.update(TENANT, created, {"port": 5433})

    assigned = await service.assign(TENANT, created, "reports")  # `created` is stale: not "already assigned"

    assert (assigned.product_name, assigned.port) == ("reports", 5433)


# -- keys -------------------------------------------------------------------------------------


async def test_rotation_reseals_every_secret_under_the_active_key(repository: FakeRepository) -> None:
    before = make_service(repository, OLD_KEY)
    created = await before.create(TENANT, body(), None)
    await before.create(TENANT, body(configName="billing"), None)

    after = make_service(repository, f"{NEW_KEY},{OLD_KEY}")  # the first key seals
    result = await after.rotate_keys(batch_size=1)

    assert result.resealed == {"old": 2} and result.unreadable == {}
    assert await repository.key_id_counts() == {"new": 2}
    assert await password_of(make_service(repository, NEW_KEY), created) == "s3cret-pw"
    assert (await after.rotate_keys()).resealed == {}  # a rerun has nothing left to do


async def test_secrets_under_a_key_not_loaded_are_counted_and_named(repository: FakeRepository) -> None:
    await make_service(repository, OLD_KEY).create(TENANT, body(), None)

    without_old = make_service(repository, NEW_KEY)

    assert (await without_old.rotate_keys()).unreadable == {"old": 1}
    assert await without_old.missing_key_ids() == ["old"]


async def test_concurrent_lists_read_each_stale_row_once(
    service: ConnectionService, repository: FakeRepository
) -> None:
    made = [await service.create(TENANT, body(configName=f"db-{n}"), "app") for n in range(3)]
    rows = RenderedRows(lambda connection: {"name": connection.config_name})

    pages = await asyncio.gather(*(service.list_connections(TENANT, ListQuery(), rows) for _ in range(8)))
    assert [[orjson.loads(r.json)["name"] for r in page.items] for page in pages] == [["db-2", "db-1", "db-0"]] * 8
    assert sorted(repository.rows_read) == sorted(c.number for c in made)  # each once, not 8 times

    await service.update(TENANT, made[0], {"configName": "renamed"})
    page = await service.list_connections(TENANT, ListQuery(), rows)
    assert [orjson.loads(r.json)["name"] for r in page.items] == ["db-2", "db-1", "renamed"]
    assert repository.rows_read[-1] == made[0].number and len(repository.rows_read) == 4
    assert len(service._list_reads) == 0  # no tenant's turn is left behind
