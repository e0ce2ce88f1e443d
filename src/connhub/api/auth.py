"""Who is asking: the tenant and scopes of a request (SPEC.md section 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

from connhub.config import Settings
from connhub.domain.errors import Forbidden, Unauthorized

READ = "connections:read"
WRITE = "connections:write"
AUDIT_READ = "audit:read"
DEFAULT_TENANT = "default"
# The latest `exp` a token may carry: the end of year 9999 (RFC 7519 NumericDate, seconds).
MAX_EXP = 253_402_300_799


@dataclass(frozen=True)
class Principal:
    tenant: str
    scopes: frozenset[str]
    subject: str | None = None  # the token's `sub`: who the audit trail names

    def require(self, scope: str) -> None:
        if scope not in self.scopes:
            raise Forbidden(f"the token lacks the {scope} scope")


class Authenticator:
    """Turns a request's bearer token into a Principal, or raises Unauthorized / Forbidden."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth == "jwt"
        self.tenant_claim = settings.jwt_tenant_claim
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.key: Any = None
        self.algorithms: list[str] = []
        if settings.jwt_public_key:
            self.key = settings.jwt_public_key.read_text()
            self.algorithms = ["RS256", "ES256"]
        elif settings.jwt_secret:
            self.key = settings.jwt_secret
            self.algorithms = ["HS256"]

    def principal(self, request: Request) -> Principal:
        if not self.enabled:
            return Principal(DEFAULT_TENANT, frozenset({READ, WRITE, AUDIT_READ}))
        claims = self._claims(request.headers.get("authorization", ""))
        tenant = claims.get(self.tenant_claim)
        # A tenant of only spaces (or other blanks) names no organization.
        if not isinstance(tenant, str | int) or isinstance(tenant, bool) or str(tenant).strip() == "":
            raise Forbidden(f"the token has no {self.tenant_claim} claim naming an organization")
        subject = claims.get("sub")
        return Principal(str(tenant), _scopes(claims), subject if isinstance(subject, str) else None)

    def _claims(self, header: str) -> dict[str, Any]:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        if self.key is None:
            raise Unauthorized("token verification is not configured")
        try:
            claims: dict[str, Any] = jwt.decode(
                token.strip(),
                self.key,
                algorithms=self.algorithms,
                issuer=self.issuer,
                audience=self.audience,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is invalid") from None
        # PyJWT reads exp with int(): "9999999999" or 1e300 passed. RFC 7519 says a number; an
        # integer within the calendar is what every issuer sends.
        exp = claims.get("exp")
        if not isinstance(exp, int) or isinstance(exp, bool) or not 0 < exp <= MAX_EXP:
            raise Unauthorized("the token is invalid: exp must be an integer NumericDate")
        return claims


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    scopes: set[str] = set()
    if isinstance(claims.get("scope"), str):
        scopes.update(claims["scope"].split())
    if isinstance(claims.get("permissions"), list):
        scopes.update(str(item) for item in claims["permissions"])
    return frozenset(scopes)
