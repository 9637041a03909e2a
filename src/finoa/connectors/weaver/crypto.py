"""The RSA of Weaver's E9 auth: keys as base64 of their DER form, RSA/ECB/PKCS1Padding.

E9 hands out its public key (`spk`) as base64 of the X.509 SubjectPublicKeyInfo, and takes the
client's (`cpk`) the same way. The client encrypts the `secret` (for `applytoken`) and the
acting user's id (the `userid` header of every call) with the spk; the ciphertext travels as
base64. PKCS#1 v1.5 padding is random, so the same text encrypts differently each time.
"""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_BITS = 2048


def new_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def public_key_text(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """A public key as E9 writes it: base64 of the DER SubjectPublicKeyInfo."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def private_key_text(key: rsa.RSAPrivateKey) -> str:
    """A private key as base64 of its DER PKCS#8 form (the simulator keeps its own so)."""
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return base64.b64encode(der).decode("ascii")


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    key = serialization.load_der_private_key(base64.b64decode(text), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    """An spk or cpk; ValueError when it is not base64 of an RSA public key."""
    try:
        key = serialization.load_der_public_key(base64.b64decode(text, validate=True))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a base64 DER RSA public key: {exc}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def encrypt(public_key: str | rsa.RSAPublicKey, text: str) -> str:
    """`text` encrypted for the holder of `public_key` (RSA/ECB/PKCS1Padding), base64."""
    key = load_public_key(public_key) if isinstance(public_key, str) else public_key
    return base64.b64encode(key.encrypt(text.encode("utf-8"), padding.PKCS1v15())).decode()


def decrypt(private_key: rsa.RSAPrivateKey, ciphertext: str) -> str:
    """The text of a base64 PKCS#1 v1.5 ciphertext; ValueError when it does not decrypt."""
    try:
        raw = base64.b64decode(ciphertext, validate=True)
        return private_key.decrypt(raw, padding.PKCS1v15()).decode("utf-8")
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(f"does not decrypt with the key: {type(exc).__name__}") from None
