"""Prometheus metrics of the HTTP surface (recorded by connhub.api.access). Labels are route templates
and statuses, never values."""

from __future__ import annotations

from prometheus_client import Counter, Histogram
from starlette.types import Scope

REQUESTS = Counter("connhub_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "connhub_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
)


def route_template(scope: Scope) -> str:
    """The matched route's path template (bounded cardinality), or `unmatched`.

    The router records the route it matched in the scope it shares with us.
    """
    return str(getattr(scope.get("route"), "path", "unmatched"))
