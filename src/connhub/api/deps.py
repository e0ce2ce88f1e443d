"""Typed route dependencies: what a route needs, declared in its signature.

As FastAPI's full-stack template declares `SessionDep`. Each is async so FastAPI runs it on the
event loop, not through a thread hop, and none validates anything (header and query parameters
are read in `params.py`, not declared, for speed: see its docstring).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from connhub.api.auth import Principal
from connhub.api.http import hub, reader, writer
from connhub.coordination import Coordination
from connhub.health.monitor import HealthMonitor
from connhub.service import ConnectionService
from connhub.store.repository import ConnectionRepository


async def service(request: Request) -> ConnectionService:
    return hub(request).service


async def repository(request: Request) -> ConnectionRepository:
    return hub(request).repository


async def coordination(request: Request) -> Coordination | None:
    return hub(request).coordination
async def health(request: Request) -> HealthMonitor:
    return hub(request).health


ServiceDep = Annotated[ConnectionService, Depends(service)]
HealthDep = Annotated[HealthMonitor, Depends(health)]
RepositoryDep = Annotated[ConnectionRepository, Depends(repository)]
CoordinationDep = Annotated[Coordination | None, Depends(coordination)]
Reader = Annotated[Principal, Depends(reader)]
Writer = Annotated[Principal, Depends(writer)]
