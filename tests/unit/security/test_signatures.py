"""Tests for finoa.security.signatures: Standard-Webhooks style HMAC signatures."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from finoa.security.signatures import (
    SECRET_PREFIX,
    SignatureError,
    new_secret,
    sign,
    signed_headers,
    verify,
)

NOW = 1_716_000_000
BODY = '{"type":"claim.submitted","amount":"1090.00","title":"差旅"}'.encode()
SECRET = new_secret()


def headers(secret: str = SECRET, *, msg_id: str = "msg_1", at: float = NOW, body: bytes = BODY):
    return signed_headers(secret, msg_id, body, now=at)


def test_round_trip_returns_the_message_id() -> None:
    assert verify(SECRET, headers(), BODY, now=NOW) == "msg_1"


def test_signed_headers_shape() -> None:
    h = headers()
    assert h["webhook-id"] == "msg_1"
    assert h["webhook-timestamp"] == str(NOW)
    assert h["webhook-signature"].startswith("v1,")
    assert h["content-type"] == "application/json"


def test_signature_matches_the_standard_webhooks_definition() -> None:
    key = base64.b64encode(b"k" * 32).decode()
    mac = hmac.new(b"k" * 32, f"msg_1.{NOW}.".encode() + BODY, hashlib.sha256).digest()
    assert sign(SECRET_PREFIX + key, "msg_1", NOW, BODY) == "v1," + base64.b64encode(mac).decode()


def test_new_secret_is_prefixed_random_32_byte_key() -> None:
    a, b = new_secret(), new_secret()
    assert a.startswith("whsec_") and b.startswith("whsec_")
    assert a != b
    assert len(base64.b64decode(a[len("whsec_") :])) == 32


def test_whsec_secret_works() -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
    assert verify(secret, headers(secret), BODY, now=NOW) == "msg_1"


def test_raw_secret_works() -> None:
    secret = "plain-shared-secret"
    assert verify(secret, headers(secret), BODY, now=NOW) == "msg_1"


def test_whsec_secret_uses_the_decoded_key() -> None:
    key = base64.b64encode(b"raw-key-bytes").decode()
    assert sign("whsec_" + key, "m", NOW, BODY) == sign("raw-key-bytes", "m", NOW, BODY)
    assert sign("whsec_" + key, "m", NOW, BODY) != sign(key, "m", NOW, BODY)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError) as info:
        verify(new_secret(), headers(), BODY, now=NOW)
    assert info.value.field == "webhook-signature"


def test_changed_body_is_refused() -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, headers(), BODY.replace(b"1090.00", b"9090.00"), now=NOW)
    assert info.value.field == "webhook-signature"


def test_changed_id_is_refused() -> None:
    h = headers()
    h["webhook-id"] = "msg_2"
    with pytest.raises(SignatureError) as info:
        verify(SECRET, h, BODY, now=NOW)
    assert info.value.field == "webhook-signature"


def test_changed_timestamp_is_refused() -> None:
    h = headers()
    h["webhook-timestamp"] = str(NOW + 1)
    with pytest.raises(SignatureError) as info:
        verify(SECRET, h, BODY, now=NOW)
    assert info.value.field == "webhook-signature"


@pytest.mark.parametrize("offset", [-301, -3600, 301, 3600])
def test_stale_or_future_timestamp_is_refused(offset: int) -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, headers(at=NOW + offset), BODY, now=NOW)
    assert info.value.field == "webhook-timestamp"
    assert "tolerance" in info.value.reason


@pytest.mark.parametrize("offset", [-300, -1, 0, 1, 300])
def test_timestamp_within_tolerance_is_accepted(offset: int) -> None:
    assert verify(SECRET, headers(at=NOW + offset), BODY, now=NOW) == "msg_1"


def test_custom_tolerance() -> None:
    with pytest.raises(SignatureError):
        verify(SECRET, headers(at=NOW - 11), BODY, now=NOW, tolerance=10)
    assert verify(SECRET, headers(at=NOW - 10), BODY, now=NOW, tolerance=10) == "msg_1"


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("how", ["absent", "empty"])
def test_missing_header_is_named(name: str, how: str) -> None:
    h = headers()
    if how == "absent":
        del h[name]
    else:
        h[name] = ""
    with pytest.raises(SignatureError) as info:
        verify(SECRET, h, BODY, now=NOW)
    assert info.value.field == name
    assert info.value.reason == "missing"


def test_overlong_id_is_refused() -> None:
    with pytest.raises(SignatureError) as info:
        verify(SECRET, headers(msg_id="m" * 201), BODY, now=NOW)
    assert info.value.field == "webhook-id"


@pytest.mark.parametrize("value", ["abc", "1716000000.5", "1e9", "0x10"])
def test_non_integer_timestamp_is_refused(value: str) -> None:
    h = headers()
    h["webhook-timestamp"] = value
    with pytest.raises(SignatureError) as info:
        verify(SECRET, h, BODY, now=NOW)
    assert info.value.field == "webhook-timestamp"
    assert "integer" in info.value.reason


def test_one_matching_signature_among_several_is_enough() -> None:
    good = headers()["webhook-signature"]
    other = sign(new_secret(), "msg_1", NOW, BODY)
    h = headers()
    h["webhook-signature"] = f"{other} v1,AAAA {good}"
    assert verify(SECRET, h, BODY, now=NOW) == "msg_1"
    h["webhook-signature"] = f"{good} {other}"
    assert verify(SECRET, h, BODY, now=NOW) == "msg_1"


def test_several_signatures_none_matching_are_refused() -> None:
    h = headers()
    h["webhook-signature"] = " ".join(sign(new_secret(), "msg_1", NOW, BODY) for _ in range(3))
    with pytest.raises(SignatureError) as info:
        verify(SECRET, h, BODY, now=NOW)
    assert info.value.field == "webhook-signature"


def test_other_signature_versions_are_ignored() -> None:
    h = headers()
    value = h["webhook-signature"].split(",", 1)[1]
    h["webhook-signature"] = f"v1a,{value}"
    with pytest.raises(SignatureError):
        verify(SECRET, h, BODY, now=NOW)


@pytest.mark.parametrize("garbage", ["v1,caf\u00e9", "v1,\u00ff\u00fe"])
def test_non_ascii_signature_is_a_signature_error(garbage: str) -> None:
    # Starlette decodes header bytes as latin-1, so a caller can send non-ASCII here; it
    # must be refused as a bad signature, not crash hmac.compare_digest with TypeError.
    h = headers()
    h["webhook-signature"] = garbage
    with pytest.raises(SignatureError) as info:
        verify(SECRET, h, BODY, now=NOW)
    assert info.value.field == "webhook-signature"


def test_signature_error_is_a_value_error_with_message() -> None:
    err = SignatureError("webhook-id", "missing")
    assert isinstance(err, ValueError)
    assert str(err) == "webhook-id: missing"
