"""SSH tunnels over HTTP, in both dialects, against a real SSH server (asyncssh's, in process) with the
machine's PostgreSQL behind it. The Chartbrew flows are replayed as its v5.3.0 web client sends them
(client/src/sources/postgres/postgres-connection-form.jsx, slices/connection.js): the create without
the key, then the key file uploaded with the browser's `null` slots, the edit that echoes the read.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from connhub.config import Settings
from tests.conftest import client_for
from tests.support.servers import require_server
from tests.support.ssh_server import Bastion, client_key, fingerprint, host_key, public_line
from tests.support.store_contents import store_bytes

BASE = "/v1/management/connections"
TEAM = "/team/7/connections"
PRODUCT = {"X-Product-Name": "reports"}
SSH_PASSWORD = "Ssh-canary-pw:@/?#%é-90ab"
KEY = client_key(passphrase="ssh-canary-passphrase-31")
KEY_LINE = KEY.private_key.splitlines()[2]
SECRETS = (SSH_PASSWORD, KEY.passphrase or "", KEY_LINE)
USER = "ops"


@pytest.fixture
async def bastion() -> AsyncIterator[Bastion]:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    async with Bastion({USER: SSH_PASSWORD}, {USER: [KEY.public_key]}, {"db.internal": "127.0.0.1"}) as server:
        yield server


@pytest.fixture
async def api(store_url: str, make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(store_url, probe_timeout_s=5.0)) as http:
        yield http


def reporter_body(bastion: Bastion, **ssh: Any) -> dict[str, Any]:
    block = {"host": "127.0.0.1", "port": bastion.port, "userName": USER, "password": SSH_PASSWORD, **ssh}
    return {
        "configName": "behind-the-bastion",
        "type": "POSTGRESQL",
        "host": "db.internal",
        "port": 5432,
        "databaseName": "test",
        "userName": "postgres",
        "password": "unused-with-trust",
        "ssh": {name: value for name, value in block.items() if value is not None},
    }


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


# -- Reporter dialect ---------------------------------------------------------------------------


async def test_reporter_create_answers_the_ssh_block_without_its_secrets(
    api: httpx.AsyncClient, bastion: Bastion
) -> None:
    body = reporter_body(bastion, privateKey=KEY.private_key, passphrase=KEY.passphrase)
    created = await api.post(BASE, json=body, headers=PRODUCT)

    assert created.status_code == 201, created.text
    assert created.json()["ssh"] == {
        "host": "127.0.0.1", "port": bastion.port, "userName": USER,
        "hasPassword": True, "hasPrivateKey": True, "hasPassphrase": True,
    }  # fmt: skip
    assert_no_secret(created.text)


async def test_reporter_test_through_the_tunnel_then_the_key_is_trusted(
    api: httpx.AsyncClient, bastion: Bastion
) -> None:
    created = (await api.post(BASE, json=reporter_body(bastion), headers=PRODUCT)).json()
    tested = await api.post(f"{BASE}/{created['id']}/test")

    assert tested.status_code == 200
    report = tested.json()
    assert report["status"] == "success", report
    assert isinstance(report["phases"]["sshMs"], float)
    assert report["ssh"]["fingerprint"] == fingerprint(bastion.host_key)
    after = (await api.get(f"{BASE}/{created['id']}")).json()
    assert after["ssh"]["hostKey"] == public_line(bastion.host_key)  # trusted on first use


async def test_reporter_ssh_failures_name_the_field_to_fix(api: httpx.AsyncClient, bastion: Bastion) -> None:
    wrong = await api.post(f"{BASE}/test", json=reporter_body(bastion, password="not-" + SSH_PASSWORD))
    mismatch = await api.post(f"{BASE}/test", json=reporter_body(bastion, hostKey=fingerprint(host_key())))

    assert wrong.json()["error"]["category"] == "SSH_AUTH_FAILED"
    assert wrong.json()["error"]["field"] == "ssh.password"
    assert mismatch.json()["error"]["category"] == "SSH_HOST_KEY_MISMATCH"
    assert mismatch.json()["error"]["field"] == "ssh.hostKey"
    assert bastion.login_attempts == [USER]  # only the first test reached the login


@pytest.mark.parametrize(
    ("ssh", "fields"),
    [
        ({"password": None}, {"ssh.password", "ssh.privateKey"}),
        ({"privateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nnope\n"}, {"ssh.privateKey"}),
        ({"privateKey": KEY.private_key, "passphrase": "wrong"}, {"ssh.passphrase"}),
        ({"hostKey": "SHA256:tooshort"}, {"ssh.hostKey"}),
        ({"host": "ssh://bastion"}, {"ssh.host"}),
        ({"jumpHost": {"port": 22}}, {"ssh.jumpHost.host"}),
    ],
)
async def test_reporter_bad_ssh_settings_are_400s_naming_the_field(
    api: httpx.AsyncClient, bastion: Bastion, ssh: dict[str, Any], fields: set[str]
) -> None:
    response = await api.post(BASE, json=reporter_body(bastion, **ssh), headers=PRODUCT)
    assert response.status_code == 400, response.text
    assert set(response.json()["fields"]) == fields
    assert_no_secret(response.text)


async def test_reporter_patch_pins_a_key_and_null_removes_the_tunnel(
    api: httpx.AsyncClient, bastion: Bastion, store_url: str
) -> None:
    created = (await api.post(BASE, json=reporter_body(bastion), headers=PRODUCT)).json()
    url = f"{BASE}/{created['id']}"
    pinned = await api.patch(url, json={"ssh": {"hostKey": fingerprint(bastion.host_key)}})
    assert pinned.json()["ssh"]["hostKey"] == fingerprint(bastion.host_key)
    assert pinned.json()["ssh"]["hasPassword"]  # the stored password stays
    assert (await api.post(f"{url}/test")).json()["status"] == "success"

    removed = await api.patch(url, json={"ssh": None})
    assert "ssh" not in removed.json()
    assert SSH_PASSWORD.encode() not in store_bytes(store_url)


# -- Chartbrew dialect --------------------------------------------------------------------------


def chartbrew_form(bastion: Bastion, **changes: Any) -> dict[str, Any]:
    """What the v5.3.0 postgres form sends on save, after stripEmptySshSecrets (the key comes as a file)."""
    body: dict[str, Any] = {
        "type": "postgres", "subType": "postgres", "name": "bastion-db",
        "host": "db.internal", "port": "5432", "dbName": "test", "username": "postgres", "password": "pw",
        "connectionString": "", "useSsh": True, "sshHost": "127.0.0.1", "sshPort": str(bastion.port),
        "sshUsername": USER, "sshPassphrase": KEY.passphrase, "sshJumpHost": "", "sshJumpPort": "",
        "team_id": 7,
    }  # fmt: skip
    body.update(changes)
    return body


def key_upload() -> dict[str, tuple[str | None, bytes, str]]:
    """addFilesToConnection: every slot of `{...sslCerts, sshPrivateKey}`; unpicked ones are `null`."""
    return {
        "sslCa": (None, b"null", "text/plain"),
        "sslCert": (None, b"null", "text/plain"),
        "sslKey": (None, b"null", "text/plain"),
        "sshPrivateKey": ("id_ed25519", KEY.private_key.encode(), "application/octet-stream"),
    }


async def test_chartbrew_create_then_key_file_then_test(api: httpx.AsyncClient, bastion: Bastion) -> None:
    created = await api.post(TEAM, json=chartbrew_form(bastion))
    assert created.status_code == 200, created.text
    answer = created.json()
    assert answer["useSsh"] is True and answer["sshHost"] == "127.0.0.1" and answer["sshPort"] == str(bastion.port)
    assert (answer["hasSshPassword"], answer["hasSshPrivateKey"], answer["hasSshPassphrase"]) == (False, False, True)

    uploaded = await api.post(f"{TEAM}/{answer['id']}/files", files=key_upload())
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["hasSshPrivateKey"] is True

    tested = await api.get(f"{TEAM}/{answer['id']}/test")
    assert tested.status_code == 200, tested.text
    assert tested.json()["success"] is True and tested.json()["schema"] is not None
    assert_no_secret(created.text, uploaded.text, tested.text)


async def test_chartbrew_edit_echo_keeps_the_ssh_secrets(api: httpx.AsyncClient, bastion: Bastion) -> None:
    created = (await api.post(TEAM, json=chartbrew_form(bastion, sshPassword=SSH_PASSWORD))).json()
    await api.post(f"{TEAM}/{created['id']}/files", files=key_upload())
    read = (await api.get(f"{TEAM}/{created['id']}")).json()
    assert "sshPassword" not in read and "sshPrivateKey" not in read  # as Chartbrew answers

    echoed = await api.put(f"{TEAM}/{created['id']}", json={**read, "name": "renamed-bastion-db"})

    assert echoed.status_code == 200, echoed.text
    kept = echoed.json()
    assert (kept["hasSshPassword"], kept["hasSshPrivateKey"], kept["hasSshPassphrase"]) == (True, True, True)
    assert (await api.get(f"{TEAM}/{created['id']}/test")).json()["success"] is True


async def test_chartbrew_use_ssh_false_removes_the_tunnel(api: httpx.AsyncClient, bastion: Bastion) -> None:
    created = (await api.post(TEAM, json=chartbrew_form(bastion, sshPassword=SSH_PASSWORD))).json()
    off = await api.put(f"{TEAM}/{created['id']}", json={"useSsh": False})
    assert off.json()["useSsh"] is False and off.json()["hasSshPassword"] is False


async def test_chartbrew_errors_name_its_ssh_fields(api: httpx.AsyncClient, bastion: Bastion) -> None:
    bad_host = await api.post(TEAM, json=chartbrew_form(bastion, sshHost="ssh://x", sshPassword=SSH_PASSWORD))
    bad_port = await api.post(TEAM, json=chartbrew_form(bastion, sshPort="twenty-two", sshPassword=SSH_PASSWORD))
    failed = await api.post(
        "/team/7/connections/postgres/test", json=chartbrew_form(bastion, sshPassword="wrong", sshPassphrase="")
    )

    assert bad_host.status_code == 400 and "sshHost" in bad_host.json()["fields"]
    assert bad_port.status_code == 400 and "sshPort" in bad_port.json()["fields"]
    assert failed.json()["success"] is False
    assert failed.json()["error"]["category"] == "SSH_AUTH_FAILED"
    assert failed.json()["error"]["field"] == "sshPassword"


# -- secrets ------------------------------------------------------------------------------------


async def test_no_ssh_secret_in_any_answer_log_line_or_store_byte(
    api: httpx.AsyncClient, bastion: Bastion, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="asyncssh")
    body = reporter_body(bastion, privateKey=KEY.private_key, passphrase=KEY.passphrase)
    created = await api.post(BASE, json=body, headers=PRODUCT, params={"validate": "true"})
    url = f"{BASE}/{created.json()['id']}"
    answers = [
        created,
        await api.post(f"{url}/test"),
        await api.get(f"{url}/schema"),
        await api.get(url),
        await api.get(BASE),
        await api.post(BASE, json={**body, "configName": "x"}, headers=PRODUCT),  # 400
        await api.post(f"{BASE}/test", json=reporter_body(bastion, password="wrong-" + SSH_PASSWORD)),
        await api.post(TEAM, json=chartbrew_form(bastion, name="cb-copy", sshPassword=SSH_PASSWORD)),
        await api.get(TEAM),
    ]
    assert created.status_code == 201
    assert_no_secret(*(answer.text for answer in answers))
    assert_no_secret("\n".join(record.getMessage() for record in caplog.records))
    at_rest = store_bytes(store_url)
    assert all(secret.encode() not in at_rest for secret in SECRETS)
