"""Attacks on auth and tenancy, on every route of both dialects (SPEC.md section 2).

Every operation of /openapi.json but the four operational ones is tried with forged tokens: `alg:
none` (in its spellings), an HS256 token where an RS256 key is configured, the classic key
confusion (an HS256 token whose secret is the server's RSA public key), a key that is not the
server's, an expired token, one without `exp`, and garbage: each is 401 in the JSON error shape. A
valid token without the tenant claim is 403. A valid token of another organization gets 404 for
every record of the first one (403 on a Chartbrew team that is not its own) and never a byte of its
data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from connhub.config import Settings
from connhub.store.migrate import migrate
from tests.conftest import client_for
from tests.reliability.conftest import Figures
from tests.support.reliability import is_problem

ALL = "connections:read connections:write"
OPERATIONAL = {"/health", "/readyz", "/metrics", "/version"}
MARKERS = ("acme-secret-warehouse", "acme.internal.example", "acme_ledger", "acme-dba")  # acme's data
SERVER_KEY = rsa.generate_private_key(65537, 2048)
PUBLIC_PEM = SERVER_KEY.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(tenant: Any = "acme", **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"exp": int(time.time()) + 300, "scope": ALL, **extra}
    if tenant is not None:
        body["tenantId"] = tenant
    return body


def signed(payload: dict[str, Any], key: Any = SERVER_KEY, algorithm: str = "RS256") -> str:
    return jwt.encode(payload, key, algorithm=algorithm)


def handmade(header: dict[str, Any], payload: dict[str, Any], signature: bytes | None = None, key: bytes = b"") -> str:
    """A token built by hand, as an attacker does (PyJWT refuses to make most of these)."""
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    if signature is None:
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64url(signature)}"


def forged_tokens() -> dict[str, str]:
    other_rsa = rsa.generate_private_key(65537, 2048)
    return {
        "alg none": handmade({"alg": "none", "typ": "JWT"}, claims()),
        "alg None": handmade({"alg": "None", "typ": "JWT"}, claims()),
        "alg NONE with a signature": handmade({"alg": "NONE"}, claims(), signature=b"x" * 32),
        "HS256 with a guessed secret": signed(claims(), "secret-the-attacker-chose-32-bytes!!", "HS256"),
        "HS256 keyed with the server's public key (key confusion)": handmade(
            {"alg": "HS256"}, claims(), key=PUBLIC_PEM
        ),
        "HS256 keyed with the public key, trimmed": handmade({"alg": "HS256"}, claims(), key=PUBLIC_PEM.strip()),
        "RS256 signed by another key": signed(claims(), other_rsa),
        "ES256 signed by another key": signed(claims(), ec.generate_private_key(ec.SECP256R1()), "ES256"),
        "expired": signed(claims(exp=int(time.time()) - 5)),
        "no exp": signed({"tenantId": "acme", "scope": ALL}),
        "payload changed after signing": _tampered(),
        "not a JWT": "not.a.jwt",
        "empty": "",
        "one huge segment": "a" * 16_000,
    }


def _tampered() -> str:
    header, _, signature = signed(claims("globex")).split(".")
    return f"{header}.{b64url(json.dumps(claims('acme')).encode())}.{signature}"


@pytest.fixture(scope="module")
async def api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[httpx.AsyncClient]:
    workdir: Path = tmp_path_factory.mktemp("auth")
    (workdir / "jwt.pem").write_bytes(PUBLIC_PEM)
    url = f"sqlite:///{workdir / 'auth.db'}"
    migrate(url)
    settings = Settings(
        database_url=url,
        encryption_keys="auth:" + base64.b64encode(b"k" * 32).decode(),
        data_dir=workdir / "data",
        auth="jwt",
        jwt_public_key=workdir / "jwt.pem",
        probe_allow_cidrs="127.0.0.0/8",
        probe_timeout_s=1,
    )
    async with client_for(settings) as http:
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "X-Product-Name": "auth-attacks"}


class Victim:
    """acme's records, one per dialect, holding the markers no other tenant may see."""

    def __init__(self, reporter: dict[str, Any], chartbrew: dict[str, Any]) -> None:
        self.reporter, self.chartbrew = reporter, chartbrew


@pytest.fixture(scope="module")
async def victim(api: httpx.AsyncClient) -> Victim:
    acme = bearer(signed(claims("acme")))
    body = {
        "configName": MARKERS[0],
        "type": "POSTGRESQL",
        "host": MARKERS[1],
        "port": 5432,
        "databaseName": MARKERS[2],
        "userName": MARKERS[3],
        "password": "acme-password",
    }
    reporter = await api.post("/v1/management/connections", json=body, headers=acme)
    assert reporter.status_code == 201, reporter.text
    chartbrew_body = {"name": MARKERS[0] + "-cb", "type": "postgres", "host": MARKERS[1], "port": "5432"}
    chartbrew_body |= {"dbName": MARKERS[2], "username": MARKERS[3], "password": "acme-password"}
    chartbrew = await api.post("/team/acme/connections", json=chartbrew_body, headers=acme)
    assert chartbrew.status_code == 200, chartbrew.text
    return Victim(reporter.json(), chartbrew.json())


async def operations(api: httpx.AsyncClient) -> list[tuple[str, str]]:
    document = (await api.get("/openapi.json")).json()
    return [
        (method.upper(), path) for path, ops in document["paths"].items() if path not in OPERATIONAL for method in ops
    ]


def fill(path: str, victim: Victim, team: str = "acme") -> str:
    return (
        path.replace("{id}", victim.reporter["id"])
        .replace("{connection_id}", str(victim.chartbrew["id"]))
        .replace("{team_id}", team)
        .replace("{type}", "postgres")
    )


def payload(method: str, path: str) -> dict[str, Any]:
    if path.endswith("/files"):
        return {"files": {"sslCa": ("ca.pem", b"not a pem", "text/plain")}}
    if method in ("POST", "PUT", "PATCH"):
        return {"json": {"port": 5433, "name": "intruder-copy"} if path.endswith(("}", "/duplicate")) else {}}
    return {}


async def test_forged_tokens_are_401_on_every_route(api: httpx.AsyncClient, victim: Victim, figures: Figures) -> None:
    routes = await operations(api)
    assert len(routes) >= 20, routes  # both dialects are there
    for name, token in forged_tokens().items():
        for method, path in routes:
            response = await api.request(method, fill(path, victim), headers=bearer(token), **payload(method, path))
            figures.requests += 1
            figures.faults += 1
            assert response.status_code == 401, (name, method, path, response.text[:200])
            assert is_problem(response.json()) and response.json()["code"] == "CONN-1002"
            assert not any(marker in response.text for marker in MARKERS)
    for method, path in routes:  # no token at all, or another scheme
        for headers in ({}, {"Authorization": "Basic YWNtZTphY21l"}, {"Authorization": "Bearer"}):
            assert (await api.request(method, fill(path, victim), headers=headers)).status_code == 401
            figures.requests += 1


async def test_a_valid_token_without_tenant_or_scope_is_403(api: httpx.AsyncClient, victim: Victim) -> None:
    routes = await operations(api)
    no_tenant = bearer(signed(claims(tenant=None)))
    no_scope = bearer(signed({**claims(), "scope": "profile email"}))
    read_only = bearer(signed(claims(scope="connections:read")))
    for method, path in routes:
        url = fill(path, victim)
        for headers in (no_tenant, no_scope):
            response = await api.request(method, url, headers=headers, **payload(method, path))
            assert response.status_code == 403, (method, path, response.text[:200])
            assert response.json()["code"] == "CONN-1003"
        writes = (method != "GET" and not path.endswith("validate-schema")) or path.endswith("}/test")
        if writes:
            response = await api.request(method, url, headers=read_only, **payload(method, path))
            assert response.status_code == 403, (method, path, response.text[:200])


async def test_another_tenant_sees_nothing_of_acme_on_any_route(
    api: httpx.AsyncClient, victim: Victim, figures: Figures
) -> None:
    globex = bearer(signed(claims("globex")))
    answers: list[httpx.Response] = []
    for method, path in await operations(api):
        # On its own team (and in the Reporter dialect), acme's ids are unknown: 404.
        if "{id}" in path or "{connection_id}" in path:
            own = await api.request(method, fill(path, victim, "globex"), headers=globex, **payload(method, path))
            assert own.status_code == 404, (method, path, own.text[:200])
            answers.append(own)
        # acme's team is not globex's: 403, whatever the route.
        if "{team_id}" in path:
            theirs = await api.request(method, fill(path, victim, "acme"), headers=globex, **payload(method, path))
            assert theirs.status_code == 403, (method, path, theirs.text[:200])
            answers.append(theirs)
    for response in answers:
        assert not any(marker in response.text for marker in MARKERS), (response.request.url, response.text[:300])
    figures.requests += len(answers)
    figures.faults += len(answers)  # each a cross-tenant attempt
    listings = [
        await api.get("/v1/management/connections", headers=globex),
        await api.get("/v1/management/connections/unassigned", headers=globex),
        await api.get("/v1/data-sources", headers=globex),
        await api.get(f"/v1/data-sources/{MARKERS[0]}", headers=globex),
        await api.get(f"/v1/data-sources/{victim.reporter['id']}", headers=globex),
        await api.get("/team/globex/connections", headers=globex),
        await api.get("/v1/management/connections", params={"configName": "acme"}, headers=globex),
        await api.post(
            "/v1/management/connections/validate-schema",
            json={"mappedFields": {MARKERS[0]: {"t": ["c"]}}},
            headers=globex,
        ),
    ]
    for response in listings:
        assert response.status_code in (200, 404, 422), response.text[:200]
        assert not any(marker in response.text for marker in MARKERS[1:]), response.text[:300]
    figures.requests += len(listings)
    # acme still has everything, and globex may use the same name.
    acme = bearer(signed(claims("acme")))
    assert (await api.get(f"/v1/management/connections/{victim.reporter['id']}", headers=acme)).status_code == 200
    assert (await api.get(f"/team/acme/connections/{victim.chartbrew['id']}", headers=acme)).status_code == 200
    figures.verified += 2


async def test_an_hs256_deployment_refuses_rs256_and_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hs.db'}"
    migrate(url)
    secret = "hs256-deployment-secret-of-32-bytes!"
    settings = Settings(
        database_url=url,
        encryption_keys="auth:" + base64.b64encode(b"k" * 32).decode(),
        data_dir=tmp_path / "data",
        auth="jwt",
        jwt_secret=secret,
    )
    async with client_for(settings) as http:
        assert (
            await http.get("/v1/management/connections", headers=bearer(signed(claims(), secret, "HS256")))
        ).status_code == 200
        for token in (signed(claims()), handmade({"alg": "none"}, claims()), signed(claims(), secret + "x", "HS256")):
            response = await http.get("/v1/management/connections", headers=bearer(token))
            assert response.status_code == 401 and response.json()["code"] == "CONN-1002"
