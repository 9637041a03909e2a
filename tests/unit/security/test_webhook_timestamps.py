"""Webhook timestamps are canonical integers: one moment, one signed text."""

from __future__ import annotations

import pytest

from finoa.security.signatures import SignatureError, new_secret, signed_headers, verify

SECRET = new_secret()
NOW = 1_716_000_000
BODY = b'{"type": "claim.submitted"}'


def refused_header(name: str, value: str) -> str:
    """The header a correctly signed message is refused for once `name` is set to `value`."""
    headers = signed_headers(SECRET, "msg_1", BODY, now=NOW)
    headers[name] = value
    with pytest.raises(SignatureError) as info:
        verify(SECRET, headers, BODY, now=NOW)
    return info.value.field


@pytest.mark.parametrize(
    "written",
    [f" {NOW}", f"{NOW} ", f"+{NOW}", f"0{NOW}", f"{NOW:_}", "١٧١٦٠٠٠٠٠٠", f"{NOW}.0", "-0"],
)
def test_non_canonical_timestamp_is_refused(written: str) -> None:
    assert refused_header("webhook-timestamp", written) == "webhook-timestamp"


def test_canonical_timestamp_is_accepted() -> None:
    headers = signed_headers(SECRET, "msg_1", BODY, now=NOW)
    assert headers["webhook-timestamp"] == str(NOW)
    assert verify(SECRET, headers, BODY, now=NOW) == "msg_1"


@pytest.mark.parametrize("signature", ["v1,密码", "v1,\udcff", "v2,é v1,ü"])
def test_non_ascii_signature_is_a_mismatch(signature: str) -> None:
    assert refused_header("webhook-signature", signature) == "webhook-signature"
