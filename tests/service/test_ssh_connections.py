"""Connections with an SSH tunnel, through the use cases on a real store (SQLite and PostgreSQL),
tested against a real SSH server in process with the machine's PostgreSQL behind it.

What a user sees: the ssh settings come back without their secrets; the secrets are sealed like
the password (bound to the record, covered by key rotation, wiped on delete, re-sealed on
duplicate); the first successful test trusts the bastion's key and a later change of key fails;
and no ssh secret is in any answer, log line or byte of the store.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import create_engine, select

from connhub.domain.connection import Connection
from connhub.domain.reports import ErrorCategory
from connhub.probes.runner import ProbePolicy, ProbeRunner
from connhub.secrets import KeyRing, new_key_entry
from connhub.service import ConnectionService
from connhub.store.repository import ConnectionRepository
from connhub.store.tables import connection_secrets
from connhub.store.urls import sync_url
from tests.support.servers import require_server
from tests.support.ssh_server import Bastion, client_key, host_key, public_line
from tests.support.store_contents import store_bytes

SSH_PASSWORD = "Ssh-canary-pw:@/?#%é-51c2"
KEY = client_key(passphrase="ssh-canary-passphrase-77")
KEY_LINE = KEY.private_key.splitlines()[2]
USER = "ops"
SSH_SECRETS = (SSH_PASSWORD, KEY.passphrase or "", KEY_LINE)


@pytest.fixture
async def bastion() -> AsyncIterator[Bastion]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    async with Bastion({USER: SSH_PASSWORD}, {USER: [KEY.public_key]}, {"db.internal": "127.0.0.1"}) as server:
        yield server


@pytest.fixture
async def service(store_url: str) -> AsyncIterator[ConnectionService]:
    repository = ConnectionRepository.open(store_url)
    keys = KeyRing.parse(new_key_entry("ssh1"))
    yield ConnectionService(repository, keys, ProbeRunner(ProbePolicy(timeout_s=5)))
    await repository.close()


def fields(bastion: Bastion, **ssh: Any) -> dict[str, Any]:
    block = {
        "host": "127.0.0.1",
        "port": bastion.port,
        "userName": USER,
        "password": SSH_PASSWORD,
        "privateKey": KEY.private_key,
        "passphrase": KEY.passphrase,
        **ssh,
    }
    return {
        "configName": "behind-the-bastion",
        "type": "POSTGRESQL",
        "host": "db.internal",
        "port": 5432,
        "databaseName": "test",
        "userName": "postgres",
        "password": "db-pw-unused-by-trust",
        "ssh": {name: value for name, value in block.items() if value is not None},
    }


def stored_secret_fields(store_url: str, connection: Connection) -> set[str]:
    engine = create_engine(sync_url(store_url))
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(connection_secrets.c.field).where(connection_secrets.c.connection_number == connection.number)
            )
            return {row.field for row in rows}
    finally:
        engine.dispose()


async def test_ssh_settings_are_stored_without_their_secrets(
    service: ConnectionService, bastion: Bastion, store_url: str
) -> None:
    created = await service.create("t1", fields(bastion), "reports")

    assert created.ssh is not None
    assert created.ssh.to_json() == {
        "host": "127.0.0.1", "port": bastion.port, "userName": USER,
        "hasPassword": True, "hasPrivateKey": True, "hasPassphrase": True,
    }  # fmt: skip
    assert stored_secret_fields(store_url, created) == {"password", "ssh.password", "ssh.privateKey", "ssh.passphrase"}
    again = await service.get("t1", created.id)
    assert again.ssh == created.ssh
    at_rest = store_bytes(store_url)
    for secret in SSH_SECRETS:
        assert secret.encode() not in at_rest


async def test_the_first_successful_test_trusts_the_bastions_key_and_a_changed_key_fails(
    service: ConnectionService, store_url: str
) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    first_key, second_key = host_key(), host_key()
    async with Bastion({USER: SSH_PASSWORD}, hosts={"db.internal": "127.0.0.1"}, host_keys=[first_key]) as first:
        created = await service.create("t1", fields(first, privateKey=None, passphrase=None), "reports")
        port = first.port
        report = await service.test_saved("t1", created)
    assert report.status == "success", report

    trusted = await service.get("t1", created.id)
    assert trusted.ssh is not None and trusted.ssh.host_key == public_line(first_key)
    assert trusted.version == created.version + 1  # the representation changed: so does the ETag

    # Same address, another key (a rebuilt bastion, or someone in the middle): refused, nothing sent.
    async with Bastion({USER: SSH_PASSWORD}, hosts={"db.internal": "127.0.0.1"}, host_keys=[second_key],
                       port=port) as second:  # fmt: skip
        refused = await service.test_saved("t1", trusted)
        assert refused.error is not None and refused.error.category is ErrorCategory.SSH_HOST_KEY_MISMATCH
        assert refused.error.field == "ssh.hostKey"
        assert second.login_attempts == []
        assert refused.ssh is not None and refused.ssh.host_key is not None
        # The user checks the new key and pins it: the next test passes.
        pinned = await service.update("t1", trusted, {"ssh": {"hostKey": refused.ssh.host_key.host_key}})
        assert (await service.test_saved("t1", pinned)).status == "success"
        assert pinned.ssh is not None and pinned.ssh.host_key == public_line(second_key)


async def test_moving_the_bastion_forgets_its_key(service: ConnectionService, bastion: Bastion) -> None:
    created = await service.create("t1", fields(bastion, hostKey=public_line(bastion.host_key)), "reports")
    moved = await service.update("t1", created, {"ssh": {"host": "localhost"}})
    assert moved.ssh is not None and moved.ssh.host_key is None and moved.ssh.has_password


async def test_a_metadata_patch_keeps_the_ssh_secrets(service: ConnectionService, bastion: Bastion) -> None:
    created = await service.create("t1", fields(bastion), "reports")
    patched = await service.update("t1", created, {"metadata": {"team": "data"}})
    report = await service.test_saved("t1", patched)
    assert report.status == "success", report


async def test_delete_wipes_the_ssh_secrets(service: ConnectionService, bastion: Bastion, store_url: str) -> None:
    created = await service.create("t1", fields(bastion), "reports")
    await service.delete("t1", created)
    assert stored_secret_fields(store_url, created) == set()


async def test_key_rotation_reseals_the_ssh_secrets(service: ConnectionService, bastion: Bastion) -> None:
    old = new_key_entry("old0")
    before = ConnectionService(service.repository, KeyRing.parse(old), service.probes)
    created = await before.create("t1", fields(bastion), "reports")
    after = ConnectionService(service.repository, KeyRing.parse(f"{new_key_entry('new1')},{old}"), service.probes)

    moved = await after.rotate_keys()

    assert moved.resealed == {"old0": 4}  # the database password and the three ssh secrets
    assert (await after.rotate_keys()).resealed == {}  # idempotent
    report = await after.test_saved("t1", await after.get("t1", created.id))
    assert report.status == "success", report


async def test_duplicate_reseals_the_ssh_secrets_for_the_copy(
    service: ConnectionService, bastion: Bastion, store_url: str
) -> None:
    created = await service.create("t1", fields(bastion), "reports")
    copy = await service.duplicate("t1", created, "behind-the-bastion (copy)")
    assert copy.ssh is not None and copy.ssh.has_private_key and copy.ssh.has_passphrase
    assert stored_secret_fields(store_url, copy) == {"password", "ssh.password", "ssh.privateKey", "ssh.passphrase"}
    report = await service.test_saved("t1", copy)
    assert report.status == "success", report


async def test_no_ssh_secret_in_a_report_a_log_line_or_the_store(
    service: ConnectionService, bastion: Bastion, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="asyncssh")  # quiet by default (see probes.tunnel): not here
    created = await service.create("t1", fields(bastion), "reports", validate=True)
    reports = [
        await service.test_saved("t1", created),
        await service.test_unsaved(fields(bastion, password="wrong-" + SSH_PASSWORD, privateKey=None, passphrase=None)),
        await service.test_unsaved({**fields(bastion), "port": 1}),
    ]
    tables = await service.discover_tables("t1", await service.get("t1", created.id), refresh=True)
    assert tables is not None
    assert [report.status for report in reports] == ["success", "failure", "failure"]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "asyncssh" in {record.name for record in caplog.records}  # its lines were seen, and searched
    stored = await service.get("t1", created.id)
    texts = [str(report.to_json()) for report in reports] + [logged, repr(created), repr(stored)]
    for secret in SSH_SECRETS:
        assert all(secret not in text for text in texts)
        assert secret.encode() not in store_bytes(store_url)
