"""GET /v1/session: who the token is (the console signs in with it)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from connhub.api.auth import AUDIT_READ
from connhub.api.console import Session
from connhub.config import Settings
from tests.conftest import client_for
from tests.console.conftest import JWT_SECRET, READ, WRITE, mint


async def test_with_auth_disabled_it_is_the_default_tenant_with_every_scope(sqlite_client: httpx.AsyncClient) -> None:
    response = await sqlite_client.get("/v1/session")
    assert response.status_code == 200
    assert response.json() == {"tenant": "default", "scopes": [AUDIT_READ, READ, WRITE], "authEnabled": False}


async def test_with_jwt_it_names_the_tokens_tenant_and_scopes(
    sqlite_url: str, make_settings: Callable[..., Settings]
) -> None:
    async with client_for(make_settings(sqlite_url, auth="jwt", jwt_secret=JWT_SECRET)) as http:
        answer = await http.get("/v1/session", headers={"Authorization": f"Bearer {mint('acme', READ)}"})
        assert answer.json() == {"tenant": "acme", "scopes": [READ], "authEnabled": True}
        missing = await http.get("/v1/session")
        assert missing.status_code == 401 and missing.json()["code"] == "CONN-1002"
        forged = await http.get("/v1/session", headers={"Authorization": "Bearer x.y.z"})
        assert forged.status_code == 401
        unscoped = await http.get("/v1/session", headers={"Authorization": f"Bearer {mint('acme', 'profile')}"})
        assert unscoped.status_code == 403 and "connections:read" in unscoped.json()["message"]


async def test_it_is_documented(sqlite_client: httpx.AsyncClient) -> None:
    document = (await sqlite_client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/session"]["get"]
    assert set(operation["responses"]) >= {"200", "401", "403"}
    assert "/console/" not in document["paths"]
    for example in Session.model_config["json_schema_extra"]["examples"]:  # type: ignore[index]
        Session.model_validate(example)
