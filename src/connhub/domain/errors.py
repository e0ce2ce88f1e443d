"""The small hierarchy of errors the use cases raise. Only `connhub.api` turns them into HTTP.

Messages here are shown to callers: they never hold a secret.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from connhub.domain.mapping import Finding
    from connhub.domain.reports import TestReport


class ConnhubError(Exception):
    """Base of every error a caller may see. `code` is a stable `CONN-NNNN` string."""

    code = "CONN-0000"
    title = "Error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationFailed(ConnhubError):
    """One or more request fields break a rule; `fields` maps each field name to its reason."""

    code = "CONN-1001"
    title = "Invalid request"

    def __init__(self, fields: Mapping[str, str], message: str | None = None) -> None:
        self.fields = dict(fields)
        names = ", ".join(sorted(self.fields))
        super().__init__(message or f"Invalid value for: {names}")

    def renamed(self, names: Mapping[str, str]) -> ValidationFailed:
        """The same error in another API dialect's field vocabulary (`names`: ours -> theirs)."""
        return ValidationFailed({_rename(field, names): reason for field, reason in self.fields.items()})


def _rename(field: str, names: Mapping[str, str]) -> str:
    """`names` may map a whole dotted name (`ssl.mode` -> `sslMode`) or only its head."""
    if field in names:
        return names[field]
    head, dot, rest = field.partition(".")
    return names.get(head, head) + dot + rest


class Unauthorized(ConnhubError):
    code = "CONN-1002"
    title = "Unauthorized"


class Forbidden(ConnhubError):
    code = "CONN-1003"
    title = "Forbidden"


class NotFound(ConnhubError):
    code = "CONN-1004"
    title = "Not found"


class Conflict(ConnhubError):
    code = "CONN-1005"
    title = "Conflict"


class NameTaken(Conflict):
    code = "CONN-1006"
    title = "Name already in use"


class IdempotencyMismatch(Conflict):
    code = "CONN-1007"
    title = "Idempotency key reused with another body"


class IdempotencyKeyTaken(Conflict):
    """A concurrent request with the same X-Idempotency key is being stored (the service replays it)."""

    title = "Idempotency key in use"


class AlreadyAssigned(Conflict):
    code = "CONN-1008"
    title = "Connection already assigned"


class PreconditionFailed(ConnhubError):
    code = "CONN-1009"
    title = "Precondition failed"


class TestFailed(ConnhubError):
    """A live test or table discovery did not succeed; `report` says why (never with a secret)."""

    code = "CONN-1010"
    title = "Connection test failed"
    __test__ = False  # not a pytest test class

    def __init__(self, message: str, report: TestReport) -> None:
        super().__init__(message)
        self.report = report


class SchemaMismatch(ConnhubError):
    """Mapped data sources, tables or fields that do not exist (or could not be read)."""

    code = "CONN-1011"
    title = "Schema validation failed"

    def __init__(self, message: str, errors: list[Finding]) -> None:
        super().__init__(message)
        self.errors = errors


class RateLimited(ConnhubError):
    code = "CONN-1013"
    title = "Too many requests"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class StoreUnavailable(ConnhubError):
    code = "CONN-1014"
    title = "Store unavailable"


STORE_NOT_ANSWERING = "the connection store is not answering; try again shortly"  # every path to the store


class SecretsUnavailable(ConnhubError):
    """Stored secrets cannot be opened (a key id is missing from the key ring)."""

    code = "CONN-1012"
    title = "Stored secrets cannot be opened"


class SharedStateUnavailable(ConnhubError):
    """Redis (CONNHUB_REDIS_URL), which replicas share the test rate limit through, is not answering."""

    code = "CONN-1021"
    title = "Shared state unavailable"
