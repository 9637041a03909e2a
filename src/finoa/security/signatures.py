"""Webhook signatures in the Standard Webhooks style.

signature = base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}")), sent as `v1,<signature>`;
the secret is written `whsec_<base64 key>`. A timestamp more than `tolerance` seconds from now
is refused, so a captured request cannot be replayed later; the id doubles as idempotency key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_SECONDS = 300
# Seconds since the epoch written canonically: ASCII digits, no sign, no leading zero, no
# spaces or separators, so that exactly one text is signed for each moment.
CANONICAL_TIMESTAMP = re.compile(r"0|[1-9][0-9]{0,11}")


class SignatureError(ValueError):
    """A webhook failed verification; the message says which header and why."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX) :])
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for a message."""
    mac = hmac.new(_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def signed_headers(
    secret: str, msg_id: str, body: bytes, *, now: float | None = None
) -> dict[str, str]:
    """Headers a sender attaches to a webhook."""
    timestamp = int(now if now is not None else time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: dict[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> str:
    """Check a webhook; return its id, or raise SignatureError naming the bad header."""
    msg_id = headers.get("webhook-id")
    ts_raw = headers.get("webhook-timestamp")
    sig_header = headers.get("webhook-signature")
    if not msg_id:
        raise SignatureError("webhook-id", "missing")
    if len(msg_id) > 200:
        raise SignatureError("webhook-id", "longer than 200 characters")
    if not ts_raw:
        raise SignatureError("webhook-timestamp", "missing")
    if not sig_header:
        raise SignatureError("webhook-signature", "missing")
    if CANONICAL_TIMESTAMP.fullmatch(ts_raw) is None:
        raise SignatureError(
            "webhook-timestamp", "not an integer number of seconds written in plain digits"
        )
    timestamp = int(ts_raw)
    current = now if now is not None else time.time()
    if abs(current - timestamp) > tolerance:
        raise SignatureError(
            "webhook-timestamp", f"outside the {tolerance}-second tolerance (stale or future)"
        )
    expected = sign(secret, msg_id, timestamp, body).split(",", 1)[1]
    for candidate in sig_header.split():
        version, _, value = candidate.partition(",")
        given = value.encode("utf-8", "surrogatepass")  # any text compares, as bytes
        if version == "v1" and hmac.compare_digest(given, expected.encode()):
            return msg_id
    raise SignatureError("webhook-signature", "does not match the body")
