"""Header and query parameters: routes read them from the request; OpenAPI documents them from here.

As with JSON bodies (`openapi.json_body`), parameters are not declared in route signatures. The
domain checks them (`parse_list_query`, `validate_product_name`...), so FastAPI's own validation
would be a second copy of each rule, and it cost a fifth of a create's CPU (FastAPI validates every
declared parameter through pydantic on every request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from starlette.requests import Request

from connhub.domain.errors import ValidationFailed

TRUE = frozenset({"true", "1", "yes", "on"})
FALSE = frozenset({"false", "0", "no", "off", ""})


@dataclass(frozen=True)
class Parameter:
    name: str
    where: Literal["header", "query"]
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})
    description: str = ""
    required: bool = False  # documented as required; the route (the domain) still checks it
    example: str | None = None

    def text(self, request: Request) -> str | None:
        source = request.headers if self.where == "header" else request.query_params
        return source.get(self.name)

    def flag(self, request: Request) -> bool:
        """A boolean parameter: true/false (also 1/0, yes/no, on/off); absent is false."""
        raw = (self.text(request) or "").strip().lower()
        if raw in TRUE or raw in FALSE:
            return raw in TRUE
        raise ValidationFailed({self.name: "must be true or false"})

    def openapi(self) -> dict[str, Any]:
        documented: dict[str, Any] = {"name": self.name, "in": self.where, "required": self.required}
        documented["schema"] = self.schema
        if self.description:
            documented["description"] = self.description
        if self.example is not None:
            documented["example"] = self.example
        return documented


def documented(*parameters: Parameter, **extra: Any) -> dict[str, Any]:
    """`openapi_extra` documenting `parameters` (and, merged in, `extra` such as a request body)."""
    return {**extra, "parameters": [parameter.openapi() for parameter in parameters]}
