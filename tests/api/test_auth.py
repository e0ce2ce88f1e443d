"""JWT auth, scopes and tenant isolation (SPEC.md section 2)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connhub.config import Settings
from tests.conftest import PRODUCT, client_for, seed_body

BASE = "/v1/management/connections"
SECRET = "hs256-test-secret-that-is-long-enough-32b"
ALL = "connections:read connections:write"


def token(
    tenant: Any = "acme", scope: str | None = ALL, key: Any = SECRET, algorithm: str = "HS256", **claims: Any
) -> str:
    payload: dict[str, Any] = {"exp": int(time.time()) + 300, **claims}
    if tenant is not None:
        payload["tenantId"] = tenant
    if scope is not None:
        payload["scope"] = scope
    return jwt.encode(payload, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}", **PRODUCT}


@pytest.fixture
async def jwt_client(
    store_url: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        store_url, auth="jwt", jwt_secret=SECRET, jwt_issuer="https://issuer", jwt_audience="connhub"
    )
    async with client_for(settings) as http:
        yield http


def good(tenant: str = "acme", scope: str = ALL) -> dict[str, str]:
    return bearer(token(tenant, scope, iss="https://issuer", aud="connhub"))


async def test_missing_or_invalid_tokens_are_401_json(jwt_client: httpx.AsyncClient) -> None:
    now = int(time.time())
    cases = [
        {},
        {"Authorization": "Basic abc"},
        bearer("not.a.jwt"),
        bearer(token(iss="https://issuer", aud="connhub", key="another-secret-that-is-32-bytes-long")),
        bearer(token(iss="https://issuer", aud="connhub", exp=now - 10)),
        bearer(token(iss="https://evil", aud="connhub")),
        bearer(token(iss="https://issuer", aud="someone-else")),
        bearer(jwt.encode({"tenantId": "acme", "scope": ALL, "exp": now + 60}, None, algorithm="none")),
    ]
    for headers in cases:
        response = await jwt_client.get(BASE, headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.json()["code"] == "CONN-1002"


async def test_token_without_exp_is_refused(jwt_client: httpx.AsyncClient) -> None:
    raw = jwt.encode({"tenantId": "acme", "scope": ALL, "iss": "https://issuer", "aud": "connhub"}, SECRET)
    assert (await jwt_client.get(BASE, headers=bearer(raw))).status_code == 401


async def test_scopes(jwt_client: httpx.AsyncClient) -> None:
    read_only = good(scope="connections:read")
    assert (await jwt_client.get(BASE, headers=read_only)).status_code == 200
    response = await jwt_client.post(BASE, json=seed_body(), headers=read_only)
    assert response.status_code == 403 and response.json()["code"] == "CONN-1003"
    assert (await jwt_client.get(BASE, headers=good(scope="connections:write"))).status_code == 403
    permissions = bearer(
        jwt.encode(
            {
                "tenantId": "acme",
                "permissions": ["connections:read"],
                "exp": int(time.time()) + 60,
                "iss": "https://issuer",
                "aud": "connhub",
            },
            SECRET,
        )
    )
    assert (await jwt_client.get(BASE, headers=permissions)).status_code == 200


async def test_token_without_tenant_claim_is_403(jwt_client: httpx.AsyncClient) -> None:
    headers = bearer(token(tenant=None, iss="https://issuer", aud="connhub"))
    assert (await jwt_client.get(BASE, headers=headers)).status_code == 403


async def test_another_tenants_record_is_404_everywhere(jwt_client: httpx.AsyncClient) -> None:
    created = await jwt_client.post(BASE, json=seed_body(), headers=good("acme"))
    assert created.status_code == 201
    url = f"{BASE}/{created.json()['id']}"
    intruder = good("globex")
    for method, path in (
        ("GET", url),
        ("PATCH", url),
        ("DELETE", url),
        ("POST", url + "/test"),
        ("GET", url + "/schema"),
    ):
        kwargs: dict[str, Any] = {"json": {"port": 1}} if method == "PATCH" else {}
        response = await jwt_client.request(method, path, headers=intruder, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert "production-db" not in response.text
    assert (await jwt_client.get(BASE, headers=intruder)).json()["total"] == 0
    assert (await jwt_client.get("/v1/data-sources", headers=intruder)).json() == []
    assert (await jwt_client.get("/v1/data-sources/production-db", headers=intruder)).status_code == 404
    # The same name is free in another tenant.
    assert (await jwt_client.post(BASE, json=seed_body(), headers=intruder)).status_code == 201
    assert (await jwt_client.get(url, headers=good("acme"))).status_code == 200


async def test_concurrent_gets_of_two_tenants_sharing_a_select_see_only_their_own(
    jwt_client: httpx.AsyncClient,
) -> None:
    # Gets that arrive together are one SELECT (group read): the tenant is checked per request.
    acme = (await jwt_client.post(BASE, json=seed_body(), headers=good("acme"))).json()["id"]
    globex = (await jwt_client.post(BASE, json=seed_body(), headers=good("globex"))).json()["id"]
    asks = [(tenant, wanted) for tenant in ("acme", "globex") for wanted in (acme, globex)] * 8
    answers = await asyncio.gather(
        *(jwt_client.get(f"{BASE}/{wanted}", headers=good(tenant)) for tenant, wanted in asks)
    )
    for (tenant, wanted), answer in zip(asks, answers, strict=True):
        owner = "acme" if wanted == acme else "globex"
        assert answer.status_code == (200 if tenant == owner else 404), (tenant, wanted, answer.text)


async def test_operational_endpoints_need_no_token(jwt_client: httpx.AsyncClient) -> None:
    for path in ("/health", "/readyz", "/metrics", "/version", "/openapi.json"):
        assert (await jwt_client.get(path)).status_code == 200, path


@pytest.mark.parametrize("kind", ["RS256", "ES256"])
async def test_public_key_tokens(
    kind: str, sqlite_url: str, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    private = (
        rsa.generate_private_key(65537, 2048) if kind == "RS256" else ec.generate_private_key(ec.SECP256R1())
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    path = tmp_path / "jwt.pem"
    path.write_bytes(public_pem)
    async with client_for(make_settings(sqlite_url, auth="jwt", jwt_public_key=path)) as http:
        signed = token(key=private, algorithm=kind)
        assert (await http.get(BASE, headers=bearer(signed))).status_code == 200
        hs = token()  # an HS256 token must not pass where a public key is configured
        assert (await http.get(BASE, headers=bearer(hs))).status_code == 401
        other = (
            ec.generate_private_key(ec.SECP256R1())
            if kind == "ES256"
            else rsa.generate_private_key(65537, 2048)
        )
        assert (await http.get(BASE, headers=bearer(token(key=other, algorithm=kind)))).status_code == 401


async def test_custom_tenant_claim(sqlite_url: str, make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(sqlite_url, auth="jwt", jwt_secret=SECRET, jwt_tenant_claim="org")
    async with client_for(settings) as http:
        raw = jwt.encode({"org": 42, "scope": ALL, "exp": int(time.time()) + 60}, SECRET)
        created = await http.post(BASE, json=seed_body(), headers=bearer(raw))
        assert created.status_code == 201
        assert (await http.get(BASE, headers=bearer(raw))).json()["total"] == 1
        assert (await http.get(BASE, headers=bearer(token("42")))).status_code == 403  # no `org` claim


# --- issue 14.6 and 14.9 -----------------------------------------------------------------------


@pytest.mark.parametrize("exp", ["9999999999", 1e300, 1e10 + 0.5, True, 10**30])
async def test_an_exp_that_is_not_an_integer_date_is_401(jwt_client: httpx.AsyncClient, exp: Any) -> None:
    headers = bearer(token(iss="https://issuer", aud="connhub", exp=exp))

    response = await jwt_client.get(BASE, headers=headers)

    assert response.status_code == 401, response.text


@pytest.mark.parametrize("tenant", ["   ", "\t", " \n "])
async def test_a_tenant_of_only_blanks_is_403(jwt_client: httpx.AsyncClient, tenant: str) -> None:
    response = await jwt_client.get(BASE, headers=good(tenant))

    assert response.status_code == 403, response.text


async def test_a_schema_refresh_needs_the_write_scope_and_counts_as_a_test(
    store_url: str, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(
        store_url,
        auth="jwt",
        jwt_secret=SECRET,
        jwt_issuer="https://issuer",
        jwt_audience="connhub",
        tests_per_minute=2,
        probe_timeout_s=1,
    )
    async with client_for(settings) as http:
        made = await http.post(BASE, json=seed_body(host="127.0.0.1", port=1), headers=good())
        schema = f"{BASE}/{made.json()['id']}/schema"
        read_only = good(scope="connections:read")

        refused = await http.get(schema, params={"refresh": "true"}, headers=read_only)
        answers = [await http.get(schema, params={"refresh": "true"}, headers=good()) for _ in range(3)]
        tested = await http.post(f"{BASE}/{made.json()['id']}/test", headers=good())

    assert refused.status_code == 403 and "connections:write" in refused.json()["message"]
    assert [answer.status_code for answer in answers] == [422, 422, 429]  # unreachable, then the limit
    assert tested.status_code == 429  # refreshes and tests share the connection's limit
