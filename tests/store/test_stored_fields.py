"""`domain.connection.stored_fields` of a connection as the store gives it back, on both stores:
every field the request set, in canonical names, and no secret (what the audit, a duplicate and an
update start from)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from connhub.domain.connection import stored_fields
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing, new_key_entry
from connhub.service import ConnectionService
from connhub.store.repository import ConnectionRepository
from tests.support.pki import self_signed

CA_PEM, _ = self_signed("stored-fields-ca")
SECRETS = ("db-pw-8c1e", "ssh-pw-3f7a", CA_PEM)
BODY = {
    "configName": "ledger",
    "type": "POSTGRESQL",
    "host": "db.example.com",
    "port": 5433,
    "databaseName": "shop",
    "userName": "app",
    "password": SECRETS[0],
    "schema": "sales",
    "ssl": {"mode": "verify-ca", "ca": CA_PEM},
    "metadata": {"team": "data"},
    "options": {"application_name": "reports"},
    "subType": "postgres",
    "ssh": {
        "host": "bastion.example.com",
        "userName": "ops",
        "password": SECRETS[1],
        "jumpHost": {"host": "jump.example.com"},
    },
}


@pytest.fixture
async def service(store_url: str) -> AsyncIterator[ConnectionService]:
    repository = ConnectionRepository.open(store_url)
    yield ConnectionService(repository, KeyRing.parse(new_key_entry("f1")), ProbeRunner(ProbePolicy()))
    await repository.close()


async def test_the_stored_fields_are_the_request_without_its_secrets(service: ConnectionService) -> None:
    created = await service.create("t1", BODY, "reports")
    read = await service.get("t1", created.id)

    expected = {
        **{name: value for name, value in BODY.items() if name not in ("password", "ssl", "ssh")},
        "ssl": {"mode": "verify-ca"},
        "ssh": {
            "host": "bastion.example.com",
            "port": 22,
            "userName": "ops",
            "jumpHost": {"host": "jump.example.com", "port": 22},
        },
    }
    assert stored_fields(created) == stored_fields(read) == expected
    assert not any(secret in repr(stored_fields(read)) for secret in SECRETS)
