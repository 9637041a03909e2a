"""Feishu's event crypto: Encrypt Key decryption and the `X-Lark-Signature`.

- With an Encrypt Key set, Feishu sends `{"encrypt": "<base64>"}`: AES-256-CBC under the
  key SHA-256(encrypt_key), the IV being the first 16 bytes of the decoded text, the
  plaintext (the event's JSON) padded PKCS#7.
- Each request carries `X-Lark-Request-Timestamp` (seconds), `X-Lark-Request-Nonce` and
  `X-Lark-Signature`: SHA-256 hex of timestamp + nonce + encrypt_key + the raw body.
- The event itself carries the Verification Token (`token`, or `header.token` in schema 2.0).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import string

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TIMESTAMP_HEADER = "x-lark-request-timestamp"
NONCE_HEADER = "x-lark-request-nonce"
SIGNATURE_HEADER = "x-lark-signature"
KEY_ALPHABET = string.ascii_letters + string.digits


class EventCryptoError(ValueError):
    """An event that does not verify or decrypt; `field` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def new_secret(length: int = 32) -> str:
    """A fresh Encrypt Key or Verification Token: letters and digits."""
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(length))


def _key(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode("utf-8")).digest()


def encrypt(encrypt_key: str, message: str, *, iv: bytes | None = None) -> str:
    """`message` (UTF-8) encrypted as Feishu does; base64 text."""
    iv = iv or os.urandom(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(message.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_key(encrypt_key)), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + encryptor.update(plain) + encryptor.finalize()).decode("ascii")


def decrypt(encrypt_key: str, text: str) -> str:
    """The message inside `text`; EventCryptoError naming `encrypt` when it is not base64,
    not whole AES blocks, badly padded (a wrong Encrypt Key shows as this) or not UTF-8."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise EventCryptoError("encrypt", "is not base64") from None
    if len(data) < 32 or len(data) % 16:
        raise EventCryptoError("encrypt", "is not an IV and whole AES blocks")
    decryptor = Cipher(algorithms.AES(_key(encrypt_key)), modes.CBC(data[:16])).decryptor()
    padded = decryptor.update(data[16:]) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        plain = unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise EventCryptoError(
            "encrypt", "does not decrypt with this encrypt_key (bad padding)"
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise EventCryptoError("encrypt", "does not decrypt with this encrypt_key") from None


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """`X-Lark-Signature`: SHA-256 hex of timestamp + nonce + encrypt_key + body."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def verify_signature(got: str, timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> None:
    """Raise EventCryptoError naming `X-Lark-Signature` unless it signs the body."""
    expected = signature(timestamp, nonce, encrypt_key, body).encode("ascii")
    if not hmac.compare_digest(got.encode("utf-8", "replace"), expected):
        raise EventCryptoError("X-Lark-Signature", "does not match the encrypt_key and body")


def signed_headers(encrypt_key: str, body: bytes, timestamp: str) -> dict[str, str]:
    """The three headers Feishu puts on a request carrying `body`."""
    nonce = new_secret(16)
    return {
        "X-Lark-Request-Timestamp": timestamp,
        "X-Lark-Request-Nonce": nonce,
        "X-Lark-Signature": signature(timestamp, nonce, encrypt_key, body),
    }
