"""DingTalk's callback crypto against the vendor's published reference vector."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from finoa.connectors.dingtalk.crypto import (
    CallbackCrypto,
    CallbackCryptoError,
    aes_key_bytes,
    new_encoding_aes_key,
    signature,
)

# open-dingtalk/DingTalk-Callback-Crypto, DingCallbackCrypto3.py: a check_url event.
VENDOR = {
    "token": "mryue",
    "aes_key": "Yue0EfdN5900c1ce5cf6A152c63DDe1808a60c5ecd7",
    "owner_key": "ding6ccabc44d2c8d38b",
    "msg_signature": "03044561471240d4a14bb09372dfcfd4fd0e40cb",
    "timestamp": "1608001896814",
    "nonce": "WL4PK6yA",
    "encrypt": "0vJiX6vliEpwG3U45CtXqi+m8PXbQRARJ8p8BbDuD1EMTDf0jKpQ79QS93qEk7XHpP6u+oTTrd15"
    "NRPvNvmBKyDCYxxOK+HZeKju4yhELOFchzNukR+t8SB/qk4ROMu3",
    "plain": '{"EventType":"check_url"}',
}


def vendor_crypto() -> CallbackCrypto:
    return CallbackCrypto(VENDOR["token"], VENDOR["aes_key"], VENDOR["owner_key"])


def test_the_vendor_vector_verifies_and_decrypts() -> None:
    crypto = vendor_crypto()
    assert (
        crypto.sign(VENDOR["timestamp"], VENDOR["nonce"], VENDOR["encrypt"])
        == VENDOR["msg_signature"]
    )
    got = crypto.open(
        VENDOR["msg_signature"], VENDOR["timestamp"], VENDOR["nonce"], VENDOR["encrypt"]
    )
    assert got == VENDOR["plain"]


def test_our_encryption_matches_the_vendor_bytes_given_the_same_random_prefix() -> None:
    crypto = vendor_crypto()
    key = aes_key_bytes(VENDOR["aes_key"])
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    decryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = decryptor.update(base64.b64decode(VENDOR["encrypt"])) + decryptor.finalize()
    again = crypto.encrypt(VENDOR["plain"], random16=plain[:16])
    assert again == VENDOR["encrypt"]


@given(
    st.text(max_size=300),
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=30),
)
def test_round_trip(message: str, owner: str) -> None:
    crypto = CallbackCrypto("token", new_encoding_aes_key(), owner)
    sealed = crypto.envelope(message, timestamp="1700000000000")
    assert (
        crypto.open(
            sealed["msg_signature"], sealed["timeStamp"], sealed["nonce"], sealed["encrypt"]
        )
        == message
    )


def test_signature_is_over_the_sorted_strings() -> None:
    assert signature("b", "a", "d", "c") == signature("a", "b", "c", "d")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"msg_signature": "0" * 40}, "msg_signature"),
        ({"timestamp": "1608001896815"}, "msg_signature"),
        ({"nonce": "WL4PK6yB"}, "msg_signature"),
    ],
)
def test_a_tampered_callback_is_refused(change: dict[str, str], field: str) -> None:
    values = {**VENDOR, **change}
    with pytest.raises(CallbackCryptoError) as caught:
        vendor_crypto().open(
            values["msg_signature"], values["timestamp"], values["nonce"], values["encrypt"]
        )
    assert caught.value.field == field


def test_a_wrong_key_or_owner_is_refused() -> None:
    wrong_key = CallbackCrypto(VENDOR["token"], new_encoding_aes_key(), VENDOR["owner_key"])
    with pytest.raises(CallbackCryptoError, match="encrypt"):
        wrong_key.decrypt(VENDOR["encrypt"])
    other_owner = CallbackCrypto(VENDOR["token"], VENDOR["aes_key"], "dingsomebodyelse")
    with pytest.raises(CallbackCryptoError, match="another app"):
        other_owner.decrypt(VENDOR["encrypt"])


@pytest.mark.parametrize("encrypt", ["not base64 !", "", base64.b64encode(b"short").decode()])
def test_malformed_ciphertext_is_refused(encrypt: str) -> None:
    with pytest.raises(CallbackCryptoError):
        vendor_crypto().decrypt(encrypt)


@pytest.mark.parametrize("key", ["short", "x" * 44, "é" * 43])
def test_an_encoding_aes_key_is_43_characters(key: str) -> None:
    with pytest.raises(ValueError, match="aes_key"):
        CallbackCrypto("t", key, "o")
