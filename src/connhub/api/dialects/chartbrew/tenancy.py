"""Who is asking, in Chartbrew's terms: `{team_id}` is the tenant.

With auth disabled any team is its own tenant (`default` is the Reporter dialect's); with JWT
auth the token's tenant claim must equal it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from connhub.api.access import TENANT_KEY
from connhub.api.auth import READ, WRITE, Principal
from connhub.api.http import authorize, hub
from connhub.domain.errors import Forbidden

TeamId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=200,
        pattern=r"^[^\s\x00-\x1f\x7f]+$",
        description="the team (tenant); with JWT auth, the token's tenant claim",
    ),
]
ConnectionNumber = Annotated[int, Path(ge=1, le=2**63 - 1, description="the connection's integer id")]



def _team_principal(request: Request, team_id: str, scope: str) -> Principal:
    authenticator = hub(request).auth
    principal = authorize(request, scope)
    if authenticator.enabled and principal.tenant != team_id:
        raise Forbidden("the token's organization is not this team")
    request.scope[TENANT_KEY] = team_id  # the access line names the tenant served: with auth off, the team
    return Principal(team_id, principal.scopes)


async def team_reader(request: Request, team_id: TeamId) -> Principal:
    return _team_principal(request, team_id, READ)


async def team_writer(request: Request, team_id: TeamId) -> Principal:
    return _team_principal(request, team_id, WRITE)


TeamReader = Annotated[Principal, Depends(team_reader)]
TeamWriter = Annotated[Principal, Depends(team_writer)]
