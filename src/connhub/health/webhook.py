"""Alerts to the operator's webhook: signed JSON bodies, delivered from the store's outbox.

Signature (as Stripe's): `X-Connhub-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` of
`<t>.<body>` under CONNHUB_WEBHOOK_SECRET; a receiver recomputes it and refuses an old `t` (replays).
The target is CONNHUB_WEBHOOK_URL, set by the operator, so it is trusted: it does not pass the
probes' network guard (it may well be an internal address), and redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
import orjson
from uuid6 import uuid7

from connhub.health.model import Claim, Outcome
from connhub.store.health import Delivery, PendingEvent

SIGNATURE_HEADER = "X-Connhub-Signature"
STATE_CHANGED = "connection.state_changed"
CERTIFICATE_EXPIRING = "connection.certificate_expiring"
FIRST_RETRY_S = 10.0
MAX_RETRY_S = 3600.0


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str, body: bytes) -> int | None:
    """The timestamp of a valid signature header for `body`, else None (what a receiver does)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    if not parts.get("t", "").isdigit():
        return None
    timestamp = int(parts["t"])
    expected = signature(secret, timestamp, body)
    return timestamp if hmac.compare_digest(expected, header) else None


def retry_delay(attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones: 10 s, 20 s, 40 s... up to an hour."""
    return min(MAX_RETRY_S, FIRST_RETRY_S * 2.0 ** (attempts - 1))


def events_for(
    claim: Claim, outcome: Outcome, connection: Mapping[str, Any], *, state_change: bool
) -> list[PendingEvent]:
    """The webhook events one check owes: its state change (if announced), a certificate warning."""
    events = []
    result = outcome.result
    if state_change:
        events.append(
            _event(
                STATE_CHANGED,
                result.checked_at,
                claim.tenant,
                connection,
                {
                    "state": outcome.state.value,
                    "previousState": claim.state.value,
                    "since": _instant(outcome.state_since),
                    "cause": result.category,
                },
            )
        )
    if outcome.cert_warning and result.cert_expires_at is not None:
        days_left = max(0, (result.cert_expires_at - result.checked_at).days)
        events.append(
            _event(
                CERTIFICATE_EXPIRING,
                result.checked_at,
                claim.tenant,
                connection,
                {"certificateExpiresAt": _instant(result.cert_expires_at), "daysLeft": days_left},
            )
        )
    return events


def _event(
    kind: str, at: datetime, tenant: str, connection: Mapping[str, Any], data: Mapping[str, Any]
) -> PendingEvent:
    event_id: UUID = uuid7()
    body = {
        "id": str(event_id),
        "type": kind,
        "occurredAt": _instant(at),
        "tenant": tenant,
        "connection": dict(connection),
        **data,
    }
    return PendingEvent(event_id, kind, orjson.dumps(body).decode())


def _instant(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


class WebhookSender:
    """Posts one delivery; answers None when the receiver took it (2xx), else what went wrong."""

    def __init__(self, url: str, secret: str, *, timeout_s: float = 10.0, client: httpx.AsyncClient | None = None):
        self.url = url
        self._secret = secret
        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)

    async def send(self, delivery: Delivery, now: datetime) -> str | None:
        body = delivery.body.encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "connhub-webhook",
            "X-Connhub-Event": delivery.event_type,
            "X-Connhub-Delivery": str(delivery.event_id),
            SIGNATURE_HEADER: signature(self._secret, int(now.timestamp()), body),
        }
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            # The exception's class only: its text may quote the URL, which can hold a token.
            return f"no answer: {type(error).__name__}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}"

    async def close(self) -> None:
        await self._client.aclose()
