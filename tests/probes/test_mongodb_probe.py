"""The MongoDB probe against an in-process server speaking the real wire protocol (no mongod can be
installed here), and its failure paths against real loopback sockets: refused, silent, TLS."""

from __future__ import annotations

import asyncio
import datetime
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from bson import Binary, Code, Decimal128, ObjectId, Regex, Timestamp
from bson.int64 import Int64

from connhub.domain.reports import ErrorCategory
from connhub.probes.base import ProbeFailure, ProbeTarget, SslMaterial
from connhub.probes.guard import parse_cidrs
from connhub.probes.mongodb import PROBE, SAMPLE_SIZE, bson_type
from connhub.probes.runner import ProbePolicy, ProbeRunner
from tests.probes.conftest import SystemResolverTripwire
from tests.support.listeners import SilentListener, TlsListener, server_ssl_context
from tests.support.mongo_wire import SERVER_VERSION, MongoWireServer
from tests.support.pki import CertificateAuthority
from tests.support.probing import context, failure_of
from tests.support.servers import free_port

PASSWORD = "s3cr3t-Pa55word!"
ORDERS = [
    {
        "_id": ObjectId(),
        "customer": "ada",
        "total": Decimal128("12.50"),
        "placed": datetime.datetime(2024, 1, 2),
    },
    {"_id": ObjectId(), "customer": "bob", "total": Decimal128("3.10"), "items": [1, 2], "note": None},
    {"_id": ObjectId(), "customer": "cy", "total": 7, "note": "gift"},
]
DATABASES: dict[str, dict[str, list[dict[str, Any]]]] = {
    "shop": {"orders": ORDERS, "customers": [{"_id": 1, "name": "ada"}], "system.views": [], "empty": []},
    "other": {"secrets": [{"_id": 1}]},
}


def target(port: int, password: str = PASSWORD, **changes: Any) -> ProbeTarget:
    fields: dict[str, Any] = {
        "engine": "MONGODB",
        "host": "127.0.0.1",
        "port": port,
        "database": "shop",
        "user": "app",
        "password": password,
        "options": {"authSource": "admin"},
    }
    fields.update(changes)
    return ProbeTarget(**fields)


def assert_no_password(failure: ProbeFailure) -> None:
    """Neither the message nor anything chained to it carries the password."""
    error: BaseException | None = failure
    while error is not None:
        assert PASSWORD not in str(error)
        error = error.__cause__ or error.__context__


@pytest.fixture
async def server() -> AsyncIterator[MongoWireServer]:
    async with MongoWireServer(DATABASES, {"app": PASSWORD}) as wire:
        yield wire


# --- success ---------------------------------------------------------------------------------


async def test_test_authenticates_with_scram_and_reports_the_server_version(server: MongoWireServer) -> None:
    ctx = context()
    await PROBE.test(target(server.port), ctx)

    assert ctx.server_version == SERVER_VERSION
    assert ctx.phases.connect_ms is not None and ctx.phases.query_ms is not None
    assert ctx.tls.enabled is False
    names = server.command_names()
    assert "saslStart" in names and "saslContinue" in names and "ping" in names and "buildInfo" in names


async def test_discovery_lists_collections_with_sampled_fields(server: MongoWireServer) -> None:
    tables = await PROBE.discover_tables(target(server.port), context())

    by_name = {table.name: table for table in tables}
    assert sorted(by_name) == ["customers", "empty", "orders"]  # system.* left out
    orders = by_name["orders"]
    assert orders.fields == ["_id", "customer", "total", "placed", "items", "note"]  # first-seen order
    columns = {column.name: column for column in orders.columns}
    assert columns["_id"].primary_key and not columns["_id"].nullable and columns["_id"].type == "objectId"
    assert [name for name, column in columns.items() if column.primary_key] == ["_id"]
    assert columns["total"].type == "decimal|int"
    assert columns["note"].type == "string"  # null is not a type of its own when another is seen
    assert columns["placed"].type == "date" and columns["items"].type == "array"
    assert all(column.nullable for name, column in columns.items() if name != "_id")
    assert by_name["empty"].fields == ["_id"]
    assert server.sample_sizes == [SAMPLE_SIZE] * 3  # one bounded $sample per collection


async def test_the_client_is_closed_after_the_probe(server: MongoWireServer) -> None:
    await PROBE.discover_tables(target(server.port), context())
    with pytest.raises(ProbeFailure):
        await PROBE.test(target(server.port, password="wrong"), context())

    async with asyncio.timeout(5):  # the server sees every connection closed
        while server.open_connections:
            await asyncio.sleep(0.02)


async def test_unauthenticated_access_to_a_server_with_users_is_permission_denied(
    server: MongoWireServer,
) -> None:
    failure = await failure_of(PROBE.discover_tables(target(server.port, user="", password=""), context()))

    assert failure.category is ErrorCategory.PERMISSION_DENIED
    assert "requires authentication" in failure.message


async def test_a_user_without_rights_on_the_database_is_permission_denied() -> None:
    async with MongoWireServer(DATABASES, {"app": PASSWORD}, grants={"app": ["other"]}) as wire:
        failure = await failure_of(PROBE.discover_tables(target(wire.port), context()))

    assert failure.category is ErrorCategory.PERMISSION_DENIED
    assert "not authorized on shop" in failure.message


# --- authentication --------------------------------------------------------------------------


async def test_wrong_password_is_auth_failed_without_the_password(server: MongoWireServer) -> None:
    wrong = PASSWORD + "-not"
    failure = await failure_of(PROBE.test(target(server.port, password=wrong), context()))

    assert failure.category is ErrorCategory.AUTH_FAILED
    assert "'app'" in failure.message and "'admin'" in failure.message
    assert_no_password(failure)
    assert wrong not in failure.message


async def test_auth_source_defaults_to_the_database_as_in_connection_strings(server: MongoWireServer) -> None:
    failure = await failure_of(PROBE.test(target(server.port, options={}), context()))

    # The user lives in admin; without authSource the driver authenticates against "shop".
    assert failure.category is ErrorCategory.AUTH_FAILED
    assert "'shop'" in failure.message and "authSource" in failure.message


# --- network failures ------------------------------------------------------------------------


async def test_refused_port_is_port_closed_at_once() -> None:
    started = time.perf_counter()
    failure = await failure_of(PROBE.test(target(free_port()), context(timeout_s=5)))

    assert failure.category is ErrorCategory.PORT_CLOSED
    assert time.perf_counter() - started < 3  # the first failed heartbeat, not the selection timeout


async def test_a_listener_that_never_answers_is_a_timeout_within_the_budget() -> None:
    async with SilentListener() as silent:
        started = time.perf_counter()
        failure = await failure_of(PROBE.test(target(silent.port), context(timeout_s=1)), bound_s=5)

    assert failure.category is ErrorCategory.TIMEOUT
    assert time.perf_counter() - started < 5
    assert silent.accepted >= 1


async def test_the_probe_never_resolves_the_host_name_it_is_given(
    server: MongoWireServer, system_resolver: SystemResolverTripwire
) -> None:
    # The guard resolved and checked the name; the probe connects to that address and nowhere else.
    ctx = context(address="127.0.0.1")
    await PROBE.test(target(server.port, host="mongo.connhub.test"), ctx)

    assert ctx.server_version == SERVER_VERSION
    assert system_resolver.refused == []


async def test_a_resolver_error_inside_the_driver_is_dns_failed(system_resolver: SystemResolverTripwire) -> None:
    # In real use the probe only ever gets the guard's IP address. Should it get a name, pymongo asks
    # the system resolver; here the tripwire refuses the name on this machine (EAI_NONAME, what a
    # resolver answers for a `.invalid` name) and the driver's resolver error must still read DNS_FAILED.
    system_resolver.expect("nonexistent.invalid")
    failure = await failure_of(
        PROBE.test(target(27017, host="nonexistent.invalid"), context(address="nonexistent.invalid"))
    )

    assert failure.category is ErrorCategory.DNS_FAILED
    assert "nonexistent.invalid" in failure.message
    assert set(system_resolver.refused) == {"nonexistent.invalid"}  # it did ask, and was answered here


async def test_an_exhausted_budget_is_a_timeout_without_connecting() -> None:
    failure = await failure_of(PROBE.test(target(free_port()), context(timeout_s=0)))

    assert failure.category is ErrorCategory.TIMEOUT


async def test_srv_is_refused_because_its_hosts_cannot_be_checked() -> None:
    failure = await failure_of(PROBE.test(target(27017, options={"srv": "true"}), context()))

    assert failure.category is ErrorCategory.HOST_FORBIDDEN
    assert "mongodb+srv" in failure.message


ELSEWHERE = "127.0.0.2"  # a loopback alias the policy denies


async def test_the_members_a_hello_names_are_never_contacted() -> None:
    # A secondary whose hello names its replica set and a primary on a denied address: pymongo's
    # discovery would go there; the probe's one direct connection does not.
    policy = ProbePolicy(timeout_s=5, deny=parse_cidrs(f"{ELSEWHERE}/32"))
    options = {"authSource": "admin", "replicaSet": "rs0", "directConnection": "false", "readPreference": "primary"}
    async with SilentListener(host=ELSEWHERE) as elsewhere:
        primary = f"{ELSEWHERE}:{elsewhere.port}"
        async with MongoWireServer(users={"app": PASSWORD}, primary_elsewhere=primary) as server:
            report = await ProbeRunner(policy).test(target(server.port, options=options))

    assert report.status == "success", report
    assert elsewhere.accepted == 0


@pytest.mark.parametrize("mechanism", ["MONGODB-AWS", "MONGODB-OIDC", "GSSAPI"])
async def test_mechanisms_that_fetch_credentials_elsewhere_are_refused(mechanism: str) -> None:
    # MONGODB-AWS and MONGODB-OIDC ask cloud metadata services for credentials, GSSAPI a KDC.
    async with MongoWireServer(users={"app": PASSWORD}) as server:
        failure = await failure_of(PROBE.test(target(server.port, options={"authMechanism": mechanism}), context()))

    assert failure.category is ErrorCategory.DRIVER_ERROR
    assert mechanism in failure.message and "SCRAM-SHA-256" in failure.message
    assert server.commands == []


# --- TLS -------------------------------------------------------------------------------------

SERVER_NAME = "db.connhub.test"


@pytest.fixture(scope="module")
def ca() -> Any:
    return CertificateAuthority()


@pytest.fixture
async def tls_server(ca: Any) -> AsyncIterator[MongoWireServer]:
    leaf = ca.issue([SERVER_NAME])
    async with MongoWireServer(DATABASES, {"app": PASSWORD}, tls=server_ssl_context(leaf)) as wire:
        yield wire


async def test_an_untrusted_certificate_is_tls_failed() -> None:
    async with TlsListener() as listener:
        failure = await failure_of(PROBE.test(target(listener.port, ssl=SslMaterial("verify-ca")), context()))

    assert failure.category is ErrorCategory.TLS_FAILED
    assert "unable to get local issuer certificate" in failure.message


async def test_verify_full_checks_the_typed_host_name_while_connecting_to_the_address(
    tls_server: MongoWireServer, ca: Any
) -> None:
    ctx = context()
    tables = await PROBE.discover_tables(
        target(tls_server.port, host=SERVER_NAME, ssl=SslMaterial("verify-full", ca=ca.cert_pem)), ctx
    )

    assert "orders" in [table.name for table in tables]
    assert ctx.tls.enabled and ctx.tls.version and re.match(r"TLSv1\.[23]", ctx.tls.version)
    assert ctx.tls.cipher


async def test_verify_full_rejects_a_certificate_for_another_name(tls_server: MongoWireServer, ca: Any) -> None:
    failure = await failure_of(
        PROBE.test(
            target(tls_server.port, host="other.connhub.test", ssl=SslMaterial("verify-full", ca=ca.cert_pem)),
            context(),
        )
    )

    assert failure.category is ErrorCategory.TLS_FAILED
    assert "other.connhub.test" in failure.message or "mismatch" in failure.message.lower()


async def test_verify_ca_accepts_the_chain_whatever_the_name(tls_server: MongoWireServer, ca: Any) -> None:
    await PROBE.test(
        target(tls_server.port, host="other.connhub.test", ssl=SslMaterial("verify-ca", ca=ca.cert_pem)),
        context(),
    )


async def test_verify_ca_without_the_ca_rejects_a_private_chain(tls_server: MongoWireServer) -> None:
    failure = await failure_of(PROBE.test(target(tls_server.port, ssl=SslMaterial("verify-ca")), context()))

    assert failure.category is ErrorCategory.TLS_FAILED


async def test_require_encrypts_without_verifying(tls_server: MongoWireServer) -> None:
    ctx = context()
    await PROBE.test(target(tls_server.port, ssl=SslMaterial("require")), ctx)

    assert ctx.tls.enabled


async def test_a_client_certificate_is_presented_when_given(ca: Any) -> None:
    server_context = server_ssl_context(ca.issue([SERVER_NAME]), client_ca=ca.cert_pem)
    client = ca.issue(["app"], client=True)
    async with MongoWireServer(DATABASES, {"app": PASSWORD}, tls=server_context) as wire:
        material = SslMaterial("verify-full", ca=ca.cert_pem, cert=client.cert_pem, key=client.key_pem)
        await PROBE.test(target(wire.port, host=SERVER_NAME, ssl=material), context())

        without = SslMaterial("verify-full", ca=ca.cert_pem)
        failure = await failure_of(PROBE.test(target(wire.port, host=SERVER_NAME, ssl=without), context(timeout_s=2)))
    assert failure.category in {ErrorCategory.TLS_FAILED, ErrorCategory.DRIVER_ERROR, ErrorCategory.TIMEOUT}


async def test_a_client_key_that_does_not_match_its_certificate_is_tls_failed(ca: Any) -> None:
    client = ca.issue(["app"], client=True)
    material = SslMaterial("verify-full", ca=ca.cert_pem, cert=client.cert_pem, key=ca.issue(["x"]).key_pem)

    failure = await failure_of(PROBE.test(target(free_port(), ssl=material), context()))

    assert failure.category is ErrorCategory.TLS_FAILED


# --- through the runner ----------------------------------------------------------------------


async def test_runner_reports_success_with_version(server: MongoWireServer) -> None:
    runner = ProbeRunner(ProbePolicy(timeout_s=5))
    report = await runner.test(target(server.port))

    assert report.ok, report
    assert report.server_version == SERVER_VERSION
    assert "MongoDB 7.0.0" in report.message


async def test_runner_reports_auth_failure_without_the_password(server: MongoWireServer) -> None:
    runner = ProbeRunner(ProbePolicy(timeout_s=5))
    report = await runner.test(target(server.port, password=PASSWORD + "x"))

    assert report.error is not None and report.error.category is ErrorCategory.AUTH_FAILED
    assert report.error.field == "password"
    assert PASSWORD not in str(report.to_json())


# --- BSON type names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (True, "bool"),
        (1, "int"),
        (Int64(1), "long"),
        (1.5, "double"),
        ("x", "string"),
        (ObjectId(), "objectId"),
        (datetime.datetime(2024, 1, 1), "date"),
        (Decimal128("1.1"), "decimal"),
        (Binary(b"x", 4), "binData"),
        (b"x", "binData"),
        (Timestamp(1, 1), "timestamp"),
        (Regex("a"), "regex"),
        (Code("f()"), "javascript"),
        (Code("f()", {"a": 1}), "javascriptWithScope"),
        ({"a": 1}, "object"),
        ([1], "array"),
        (None, "null"),
    ],
)
def test_bson_type_names(value: object, name: str) -> None:
    assert bson_type(value) == name
