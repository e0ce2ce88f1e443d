"""Live tests through SSH tunnels, against a real SSH server (asyncssh's, in process, on loopback).

The bastion resolves the database's host from its own table: `db.internal` is known only to it, so
a success proves the name went through the tunnel (the system resolver tripwire refuses it here).
Behind it: the machine's PostgreSQL and MariaDB, and the in-process MongoDB and SQL Server wire
servers. Every test ends with nothing left open: no SSH connection on the bastion, no file
descriptor more in this process.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from connhub.domain.reports import ErrorCategory, TestReport
from connhub.probes.base import ProbeTarget, SshHop, SshRoute, SslMaterial
from connhub.probes.runner import ProbePolicy, ProbeRunner
from tests.probes.test_oracle_probe import tns_refuse
from tests.support.dns_server import LoopbackDnsServer
from tests.support.listeners import ScriptedListener, SilentListener
from tests.support.mongo_wire import SERVER_VERSION, MongoWireServer
from tests.support.pg_instance import PostgresInstance
from tests.support.pki import CertificateAuthority
from tests.support.servers import free_port, require_server
from tests.support.ssh_server import Bastion, SshKeyPair, client_key, fingerprint, host_key, public_line
from tests.support.tds_server import TdsServer

SSH_PASSWORD = "Ssh-pa55:@/?#%é"
USER = "tunnel"
KEY = client_key(passphrase="key-passphrase-9")
PEM_KEY = client_key("ssh-rsa", fmt="pkcs1-pem")
DB_HOSTS = {"db.internal": "127.0.0.1", "localhost": "127.0.0.1", "db.example.test": "127.0.0.1"}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def bastion() -> AsyncIterator[Bastion]:
    async with Bastion({USER: SSH_PASSWORD}, {USER: [KEY.public_key, PEM_KEY.public_key]}, DB_HOSTS) as server:
        yield server


@pytest.fixture(autouse=True)
async def nothing_left_open() -> AsyncIterator[None]:
    """No socket, listener or pipe of a tunnel outlives the test (the servers' included: their
    sockets close a loop iteration or two after the client's close arrives)."""
    before = open_fds()
    yield
    for _ in range(200):
        if open_fds() <= before:
            return
        await asyncio.sleep(0.01)
    assert open_fds() <= before, os.listdir("/proc/self/fd")


def hop(bastion: Bastion, **changes: Any) -> SshHop:
    return replace(SshHop("127.0.0.1", bastion.port, USER, password=SSH_PASSWORD), **changes)


def key_hop(bastion: Bastion, key: SshKeyPair = KEY, **changes: Any) -> SshHop:
    return hop(bastion, password=None, private_key=key.private_key, passphrase=key.passphrase, **changes)


def postgres(route: SshRoute, **changes: Any) -> ProbeTarget:
    target = ProbeTarget("POSTGRESQL", "db.internal", 5432, "test", "postgres", "trust-not-checked", ssh=route)
    return replace(target, **changes)


def assert_failed(report: TestReport, category: ErrorCategory, field: str | None) -> None:
    assert report.status == "failure", report
    assert report.error is not None
    assert (report.error.category, report.error.field) == (category, field), report.error


# --- PostgreSQL and MariaDB behind the bastion -----------------------------------------------


async def test_postgresql_through_a_password_tunnel(runner: ProbeRunner, bastion: Bastion) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    report = await runner.test(postgres(SshRoute(hop(bastion))))

    assert report.status == "success", report
    assert report.message.startswith("Connected to PostgreSQL ")
    assert report.phases.ssh_ms is not None and report.phases.connect_ms is not None
    assert report.to_json()["phases"]["sshMs"] == round(report.phases.ssh_ms, 2)
    assert bastion.forwards == [("db.internal", 5432)]  # the typed name, resolved by the bastion
    # The key the bastion showed is in the report, so the user can compare and pin it.
    assert report.ssh is not None and report.ssh.host_key is not None
    assert report.ssh.host_key.fingerprint == fingerprint(bastion.host_key)
    assert report.ssh.host_key.host_key == public_line(bastion.host_key)
    assert await bastion.settled() == 0


async def test_postgresql_tables_through_an_encrypted_key_tunnel(runner: ProbeRunner, bastion: Bastion) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    tables, report = await runner.discover_tables(postgres(SshRoute(key_hop(bastion))))

    assert report.status == "success", report
    assert tables is not None
    assert bastion.forwards == [("db.internal", 5432)]
    assert await bastion.settled() == 0


async def test_a_pem_key_without_passphrase_logs_in(runner: ProbeRunner, bastion: Bastion) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    report = await runner.test(postgres(SshRoute(key_hop(bastion, PEM_KEY))))
    assert report.status == "success", report


async def test_mariadb_through_a_tunnel(runner: ProbeRunner, bastion: Bastion) -> None:
    require_server("MariaDB", "127.0.0.1", 3306)
    target = ProbeTarget("MYSQL", "db.internal", 3306, "mysql", "root", "", ssh=SshRoute(key_hop(bastion)))
    report = await runner.test(target)
    tables, discovery_report = await runner.discover_tables(target)

    assert report.status == "success", report
    assert "MariaDB" in report.message
    assert discovery_report.status == "success" and tables
    assert bastion.forwards == [("db.internal", 3306), ("db.internal", 3306)]
    assert await bastion.settled() == 0


async def test_tls_through_the_tunnel_verifies_the_typed_name(
    runner: ProbeRunner, throwaway_postgres: PostgresInstance
) -> None:
    # The certificate is for localhost: typed `localhost`, verify-full passes through the tunnel;
    # typed `db.internal` (the same server, as the bastion resolves it) it fails.
    async with Bastion({USER: SSH_PASSWORD}, hosts=DB_HOSTS) as server:
        pg = throwaway_postgres
        ssl = SslMaterial("verify-full", ca=pg.ca.cert_pem)
        base = ProbeTarget("POSTGRESQL", "localhost", pg.port, "postgres", pg.user, pg.password, ssl=ssl)
        good = await runner.test(replace(base, ssh=SshRoute(hop(server))))
        wrong_name = await runner.test(replace(base, host="db.internal", ssh=SshRoute(hop(server))))

    assert good.status == "success", good
    assert good.tls.enabled
    assert_failed(wrong_name, ErrorCategory.TLS_FAILED, "ssl")


# --- the other engines -----------------------------------------------------------------------


async def test_mongodb_through_a_tunnel_with_its_monitor_and_pool(runner: ProbeRunner, bastion: Bastion) -> None:
    async with MongoWireServer({"shop": {"orders": [{"_id": 1, "total": 3}]}}, {"app": "mongo-pw"}) as mongo:
        target = ProbeTarget(
            "MONGODB", "db.internal", mongo.port, "shop", "app", "mongo-pw",
            options={"authSource": "admin"}, ssh=SshRoute(hop(bastion)),
        )  # fmt: skip
        report = await runner.test(target)
        tables, _ = await runner.discover_tables(target)

    assert report.status == "success", report
    assert report.server_version == SERVER_VERSION
    assert tables is not None and [t.name for t in tables] == ["orders"]
    # pymongo's monitor and pool connections each became a channel to the typed host, none elsewhere.
    assert set(bastion.forwards) == {("db.internal", mongo.port)}
    assert await bastion.settled() == 0


async def test_sql_server_verify_full_through_a_tunnel(runner: ProbeRunner, bastion: Bastion) -> None:
    ca = CertificateAuthority("Connhub Tunnel Test CA")
    async with TdsServer(ca.issue(["db.example.test"])) as tds:
        target = ProbeTarget(
            "SQL_SERVER", "db.example.test", tds.port, "shop", "sa", "Str0ng-Pa55word!",
            ssl=SslMaterial("verify-full", ca=ca.cert_pem), ssh=SshRoute(hop(bastion)),
        )  # fmt: skip
        report = await runner.test(target)

    assert report.status == "success", report
    assert tds.received.sni == ["db.example.test"]  # TLS checked the typed name through the tunnel
    [login] = tds.received.logins
    assert login.encrypted
    assert bastion.forwards == [("db.example.test", tds.port)]


async def test_oracle_listener_refusal_arrives_through_the_tunnel(runner: ProbeRunner, bastion: Bastion) -> None:
    async with ScriptedListener([tns_refuse(12514)]) as listener:
        route = SshRoute(hop(bastion))
        target = ProbeTarget("ORACLE", "db.internal", listener.port, "nosuch", "scott", "tiger", ssh=route)
        report = await runner.test(target)

    assert_failed(report, ErrorCategory.DATABASE_NOT_FOUND, "databaseName")
    assert bastion.forwards == [("db.internal", listener.port)]


# --- SSH failures ----------------------------------------------------------------------------


async def test_a_wrong_ssh_password_is_auth_failed_on_ssh_password(runner: ProbeRunner, bastion: Bastion) -> None:
    report = await runner.test(postgres(SshRoute(hop(bastion, password="wrong-" + SSH_PASSWORD))))

    assert_failed(report, ErrorCategory.SSH_AUTH_FAILED, "ssh.password")
    assert f"user '{USER}'" in report.message
    assert bastion.forwards == []


async def test_a_key_the_bastion_does_not_know_is_auth_failed_on_ssh_private_key(
    runner: ProbeRunner, bastion: Bastion
) -> None:
    report = await runner.test(postgres(SshRoute(key_hop(bastion, client_key()))))
    assert_failed(report, ErrorCategory.SSH_AUTH_FAILED, "ssh.privateKey")


@pytest.mark.parametrize("pin", ["line", "fingerprint", "known_hosts"])
async def test_a_pinned_host_key_that_matches_connects(runner: ProbeRunner, bastion: Bastion, pin: str) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    line = public_line(bastion.host_key)
    trusted = {"line": line, "fingerprint": fingerprint(bastion.host_key), "known_hosts": line}[pin]
    report = await runner.test(postgres(SshRoute(hop(bastion, host_key=trusted))))
    assert report.status == "success", report


async def test_a_host_key_mismatch_sends_nothing_past_the_key_exchange(runner: ProbeRunner, bastion: Bastion) -> None:
    other = host_key()
    report = await runner.test(postgres(SshRoute(hop(bastion, host_key=fingerprint(other)))))

    assert_failed(report, ErrorCategory.SSH_HOST_KEY_MISMATCH, "ssh.hostKey")
    assert fingerprint(bastion.host_key) in report.message and fingerprint(other) in report.message
    assert report.ssh is not None and report.ssh.host_key is not None
    assert report.ssh.host_key.fingerprint == fingerprint(bastion.host_key)  # what to pin, if it is right
    assert bastion.login_attempts == []  # no user name, no password: the key exchange was the end
    assert await bastion.settled() == 0


async def test_a_pinned_key_of_another_type_makes_the_server_show_that_type() -> None:
    # A bastion with an ed25519 and an RSA key: pinning the RSA key asks for RSA, so it matches.
    rsa = host_key("ssh-rsa")
    async with Bastion({USER: SSH_PASSWORD}, host_keys=[host_key(), rsa], hosts=DB_HOSTS) as server:
        report = await ProbeRunner(ProbePolicy(timeout_s=5)).test(
            postgres(SshRoute(hop(server, host_key=public_line(rsa))), port=free_port())
        )
    assert report.ssh is not None and report.ssh.host_key is not None
    assert report.ssh.host_key.fingerprint == fingerprint(rsa)
    # Past SSH: the bastion's connect to the database port was refused.
    assert_failed(report, ErrorCategory.SSH_FORWARD_FAILED, "port")


async def test_a_bastion_that_refuses_forwarding_is_forward_failed(runner: ProbeRunner) -> None:
    async with Bastion({USER: SSH_PASSWORD}, allow_forwarding=False) as server:
        report = await runner.test(postgres(SshRoute(hop(server))))

    assert_failed(report, ErrorCategory.SSH_FORWARD_FAILED, "ssh.userName")
    assert "forwarding" in report.message
    assert server.forwards == [("db.internal", 5432)]


async def test_a_database_host_the_bastion_cannot_resolve_is_forward_failed_on_host(
    runner: ProbeRunner, bastion: Bastion
) -> None:
    report = await runner.test(postgres(SshRoute(hop(bastion)), host="nosuch.internal"))
    assert_failed(report, ErrorCategory.SSH_FORWARD_FAILED, "host")
    assert "nosuch.internal:5432" in report.message


async def test_a_closed_ssh_port_is_ssh_unreachable(runner: ProbeRunner) -> None:
    report = await runner.test(postgres(SshRoute(SshHop("127.0.0.1", free_port(), USER, SSH_PASSWORD))))
    assert_failed(report, ErrorCategory.SSH_UNREACHABLE, "ssh.port")
    assert report.phases.ssh_ms is None


async def test_a_silent_ssh_server_is_ssh_unreachable_within_the_budget(
    make_runner: Callable[..., ProbeRunner],
) -> None:
    async with SilentListener() as silent:
        report = await make_runner(timeout_s=1.0).test(
            postgres(SshRoute(SshHop("127.0.0.1", silent.port, USER, SSH_PASSWORD)))
        )
    assert_failed(report, ErrorCategory.SSH_UNREACHABLE, "ssh.host")
    assert "within 1 s" in report.message


async def test_a_database_server_is_not_an_ssh_server(runner: ProbeRunner) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    report = await runner.test(postgres(SshRoute(SshHop("127.0.0.1", 5432, USER, SSH_PASSWORD))))
    assert_failed(report, ErrorCategory.SSH_UNREACHABLE, "ssh.port")


# --- the jump host ---------------------------------------------------------------------------


async def test_a_two_hop_chain_reaches_the_database(runner: ProbeRunner, bastion: Bastion) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    async with Bastion({"jumper": "jump-pw"}) as jump:
        route = SshRoute(
            hop(bastion),
            SshHop("127.0.0.1", jump.port, "jumper", "jump-pw", field_prefix="ssh.jumpHost.",
                   credentials_prefix="ssh.jumpHost."),
        )  # fmt: skip
        report = await runner.test(postgres(route))
        assert await jump.settled() == 0

    assert report.status == "success", report
    assert jump.forwards == [("127.0.0.1", bastion.port)]  # the jump host only ever reached the bastion
    assert bastion.forwards == [("db.internal", 5432)]
    assert report.ssh is not None and report.ssh.jump_host_key is not None
    assert report.ssh.jump_host_key.fingerprint == fingerprint(jump.host_key)
    assert await bastion.settled() == 0


async def test_a_jump_host_key_mismatch_names_the_jump_host(runner: ProbeRunner, bastion: Bastion) -> None:
    async with Bastion({USER: SSH_PASSWORD}) as jump:
        jump_hop = SshHop("127.0.0.1", jump.port, USER, SSH_PASSWORD, host_key=fingerprint(host_key()),
                          field_prefix="ssh.jumpHost.")  # fmt: skip
        report = await runner.test(postgres(SshRoute(hop(bastion), jump_hop)))

    assert_failed(report, ErrorCategory.SSH_HOST_KEY_MISMATCH, "ssh.jumpHost.hostKey")
    assert bastion.connections_total == 0 and jump.login_attempts == []


async def test_jump_host_credentials_inherited_from_the_bastion_name_the_bastion_fields(
    runner: ProbeRunner, bastion: Bastion
) -> None:
    async with Bastion({USER: "another"}) as jump:
        jump_hop = SshHop("127.0.0.1", jump.port, USER, SSH_PASSWORD, field_prefix="ssh.jumpHost.")
        report = await runner.test(postgres(SshRoute(hop(bastion), jump_hop)))
    assert_failed(report, ErrorCategory.SSH_AUTH_FAILED, "ssh.password")
    assert str(jump.port) in report.message


# --- the guard -------------------------------------------------------------------------------


async def test_the_ssh_host_passes_the_guard(make_runner: Callable[..., ProbeRunner], bastion: Bastion) -> None:
    report = await make_runner(deny="127.0.0.0/8").test(postgres(SshRoute(hop(bastion))))
    assert_failed(report, ErrorCategory.HOST_FORBIDDEN, "ssh.host")
    assert bastion.connections_total == 0


async def test_the_jump_host_passes_the_guard(make_runner: Callable[..., ProbeRunner], bastion: Bastion) -> None:
    jump = SshHop("127.0.0.2", 22, USER, SSH_PASSWORD, field_prefix="ssh.jumpHost.")
    report = await make_runner(deny="127.0.0.2/32").test(postgres(SshRoute(hop(bastion), jump)))
    assert_failed(report, ErrorCategory.HOST_FORBIDDEN, "ssh.jumpHost.host")
    assert bastion.connections_total == 0


async def test_an_ssh_host_name_is_resolved_once_by_the_guard(
    make_runner: Callable[..., ProbeRunner], bastion: Bastion
) -> None:
    require_server("PostgreSQL", "127.0.0.1", 5432)
    async with LoopbackDnsServer({"bastion.connhub.test": ["127.0.0.1"]}) as dns:
        runner = make_runner(dns_servers=(dns.address,))
        report = await runner.test(postgres(SshRoute(hop(bastion, host="bastion.connhub.test"))))

    assert report.status == "success", report
    assert sorted(dns.queries) == [("bastion.connhub.test", "A"), ("bastion.connhub.test", "AAAA")]
    assert "db.internal" not in {name for name, _ in dns.queries}  # the bastion's to resolve


async def test_a_denied_ip_literal_database_host_is_refused_before_any_ssh(
    runner: ProbeRunner, bastion: Bastion
) -> None:
    report = await runner.test(postgres(SshRoute(hop(bastion)), host="169.254.169.254"))
    assert_failed(report, ErrorCategory.HOST_FORBIDDEN, "host")
    assert bastion.connections_total == 0


# --- secrets ---------------------------------------------------------------------------------


async def test_no_ssh_secret_in_any_report(runner: ProbeRunner, bastion: Bastion) -> None:
    reports = [
        await runner.test(postgres(SshRoute(hop(bastion, password="wrong-" + SSH_PASSWORD)))),
        await runner.test(postgres(SshRoute(key_hop(bastion, client_key(passphrase="other-pass"))))),
        await runner.test(postgres(SshRoute(key_hop(bastion)), port=free_port())),
    ]
    for report in reports:
        text = str(report.to_json())
        for secret in (SSH_PASSWORD, KEY.passphrase or "", KEY.private_key.splitlines()[1]):
            assert secret not in text


async def test_a_tunnel_still_waiting_for_its_key_says_so_without_connecting(
    runner: ProbeRunner, bastion: Bastion
) -> None:
    report = await runner.test(postgres(SshRoute(hop(bastion, password=None))))
    assert_failed(report, ErrorCategory.SSH_AUTH_FAILED, "ssh.privateKey")
    assert "upload the key file" in report.message
    assert bastion.connections_total == 0
