"""DingTalk's callback crypto (回调加解密): the SHA-1 `msg_signature` and AES-256-CBC.

- The signature is SHA-1 over the concatenation of token, timestamp, nonce and the
  encrypted text, sorted as strings, in lower-case hex.
- The AES key is the 43-character EncodingAESKey read as base64 (with one `=` added): 32
  bytes; the IV is its first 16 bytes.
- The plaintext is 16 random bytes, the message length as 4 bytes big-endian, the message,
  and the owner key (the app key for an app's event subscription, the corp id for a
  corp's registered callback, the suite key for a suite), padded PKCS#7-style to a multiple
  of 32 bytes; the result is base64.
- The receiver answers `{"msg_signature", "timeStamp", "nonce", "encrypt"}` with the text
  `success` encrypted the same way; anything else and DingTalk sends the event again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import string
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

AES_KEY_LENGTH = 43
BLOCK = 32  # DingTalk pads to 32 bytes, not AES's 16
NONCE_ALPHABET = string.ascii_letters + string.digits
SUCCESS = "success"


class CallbackCryptoError(ValueError):
    """A callback that does not verify or decrypt; `field` names what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def aes_key_bytes(encoding_aes_key: str) -> bytes:
    """The 32 key bytes of a 43-character EncodingAESKey; ValueError naming `aes_key`."""
    if len(encoding_aes_key) != AES_KEY_LENGTH or not encoding_aes_key.isascii():
        raise ValueError(f"aes_key: must be the {AES_KEY_LENGTH}-character EncodingAESKey")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("aes_key: is not base64 (letters and digits only)") from None
    return key


def new_encoding_aes_key() -> str:
    """A fresh EncodingAESKey: 43 letters and digits."""
    while True:
        candidate = "".join(secrets.choice(NONCE_ALPHABET) for _ in range(AES_KEY_LENGTH))
        try:
            aes_key_bytes(candidate)
        except ValueError:
            continue
        return candidate


def new_nonce(length: int = 8) -> str:
    return "".join(secrets.choice(NONCE_ALPHABET) for _ in range(length))


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """`msg_signature`: SHA-1 hex over the four strings sorted and joined."""
    joined = "".join(sorted((token, timestamp, nonce, encrypt)))
    return hashlib.sha1(joined.encode("utf-8")).hexdigest()


@dataclass(frozen=True, repr=False)
class CallbackCrypto:
    """The crypto of one DingTalk app: its token, EncodingAESKey and owner key."""

    token: str = field(repr=False)
    encoding_aes_key: str = field(repr=False)
    owner_key: str

    def __post_init__(self) -> None:
        aes_key_bytes(self.encoding_aes_key)

    def __repr__(self) -> str:
        return f"CallbackCrypto(owner_key={self.owner_key!r})"

    @property
    def _key(self) -> bytes:
        return aes_key_bytes(self.encoding_aes_key)

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self.token, timestamp, nonce, encrypt)

    def encrypt(self, message: str, *, random16: bytes | None = None) -> str:
        """Encrypt `message` (UTF-8) for DingTalk's envelope; base64 text."""
        body = message.encode("utf-8")
        plain = (random16 or os.urandom(16)) + struct.pack(">I", len(body)) + body
        plain += self.owner_key.encode("utf-8")
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        key = self._key
        encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt: str) -> str:
        """The message inside `encrypt`; CallbackCryptoError naming `encrypt` when it is not
        base64, not a whole number of blocks, badly padded, or not for this owner key (a
        wrong AES key shows as one of these)."""
        try:
            data = base64.b64decode(encrypt, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackCryptoError("encrypt", "is not base64") from None
        if not data or len(data) % 16:
            raise CallbackCryptoError("encrypt", "is not a whole number of AES blocks")
        key = self._key
        decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CallbackCryptoError("encrypt", "does not decrypt with this aes_key (bad padding)")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise CallbackCryptoError("encrypt", "is too short to hold a message")
        (length,) = struct.unpack(">I", plain[16:20])
        message, owner = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length:
            raise CallbackCryptoError("encrypt", "its length prefix is wrong")
        if not hmac.compare_digest(owner, self.owner_key.encode("utf-8")):
            raise CallbackCryptoError("encrypt", "is meant for another app or corp (owner key)")
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError:
            raise CallbackCryptoError("encrypt", "the message is not UTF-8") from None

    def verify(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> None:
        """Raise CallbackCryptoError naming `msg_signature` unless it signs the others."""
        expected = self.sign(timestamp, nonce, encrypt).encode("ascii")
        if not hmac.compare_digest(msg_signature.encode("utf-8", "replace"), expected):
            raise CallbackCryptoError("msg_signature", "does not match the token and message")

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify, then decrypt."""
        self.verify(msg_signature, timestamp, nonce, encrypt)
        return self.decrypt(encrypt)

    def envelope(self, message: str, *, timestamp: str, nonce: str | None = None) -> dict[str, str]:
        """`{"msg_signature", "timeStamp", "nonce", "encrypt"}` carrying `message`: the
        receiver's reply (`success`), or an event as DingTalk sends it."""
        nonce = nonce or new_nonce()
        encrypt = self.encrypt(message)
        return {
            "msg_signature": self.sign(timestamp, nonce, encrypt),
            "timeStamp": timestamp,
            "nonce": nonce,
            "encrypt": encrypt,
        }
