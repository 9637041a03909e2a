"""WeCom's callback crypto (回调加解密): the SHA-1 `msg_signature`, AES-256-CBC and the
encrypted XML envelopes.

The cipher is the one every WeCom callback uses, and DingTalk's too (`dingtalk.crypto`):

- `msg_signature` is SHA-1 over token, timestamp (seconds), nonce and the encrypted text,
  sorted as strings, in lower-case hex;
- the AES key is the 43-character EncodingAESKey read as base64: 32 bytes, the IV its first 16;
- the plaintext is 16 random bytes, the message length (4 bytes big-endian), the message and
  the receiveid (the CorpID for a self-built app), padded PKCS#7-style to 32 bytes.

WeCom posts `<xml><ToUserName/><Encrypt/><AgentID/></xml>` with `msg_signature`, `timestamp`
and `nonce` in the query; the URL check (a GET) carries the encrypted `echostr` instead, and
is answered with its plaintext. A passive reply is
`<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from finoa.connectors.dingtalk.crypto import (
    CallbackCrypto,
    CallbackCryptoError,
    aes_key_bytes,
    new_encoding_aes_key,
    new_nonce,
    signature,
)
from finoa.soap.envelope import SoapRequestError, parse_xml

__all__ = [
    "CallbackCryptoError",
    "WeComCrypto",
    "aes_key_bytes",
    "new_encoding_aes_key",
    "new_nonce",
    "read_xml",
    "signature",
    "xml_text",
]

MAX_CALLBACK_BYTES = 256 * 1024  # an approval event is a few kilobytes


def read_xml(body: bytes, *, max_bytes: int = MAX_CALLBACK_BYTES) -> etree._Element:
    """The root of an XML body read defensively (no DTD, no entities, no network);
    CallbackCryptoError naming `body` when it is not well-formed."""
    try:
        return parse_xml(body, max_bytes=max_bytes)
    except SoapRequestError as exc:
        raise CallbackCryptoError("body", exc.message) from None


def xml_text(root: etree._Element, name: str) -> str | None:
    """The text of a direct child element, or None."""
    child = root.find(name)
    return child.text if child is not None and child.text is not None else None


def _cdata(parent: etree._Element, name: str, value: str) -> None:
    etree.SubElement(parent, name).text = etree.CDATA(value)


@dataclass(frozen=True, repr=False)
class WeComCrypto:
    """The crypto of one WeCom app's callback: its Token, EncodingAESKey and CorpID."""

    token: str = field(repr=False)
    encoding_aes_key: str = field(repr=False)
    corp_id: str

    _cipher: CallbackCrypto = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cipher = CallbackCrypto(self.token, self.encoding_aes_key, self.corp_id)
        object.__setattr__(self, "_cipher", cipher)

    def __repr__(self) -> str:
        return f"WeComCrypto(corp_id={self.corp_id!r})"

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return signature(self.token, timestamp, nonce, encrypt)

    def encrypt(self, message: str) -> str:
        return self._cipher.encrypt(message)

    def open(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify the signature, then decrypt (the receiveid must be the CorpID)."""
        return self._cipher.open(msg_signature, timestamp, nonce, encrypt)

    def event_xml(self, message: str, *, to_user: str, agent_id: int | str) -> str:
        """An event as WeCom posts it: the encrypted message in `<Encrypt>`."""
        root = etree.Element("xml")
        _cdata(root, "ToUserName", to_user)
        _cdata(root, "Encrypt", self.encrypt(message))
        _cdata(root, "AgentID", str(agent_id))
        return etree.tostring(root, encoding="unicode")

    def reply_xml(self, message: str, *, timestamp: str, nonce: str | None = None) -> str:
        """A passive reply: `<xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>`."""
        nonce = nonce or new_nonce(10)
        encrypt = self.encrypt(message)
        root = etree.Element("xml")
        _cdata(root, "Encrypt", encrypt)
        _cdata(root, "MsgSignature", self.sign(timestamp, nonce, encrypt))
        etree.SubElement(root, "TimeStamp").text = timestamp
        _cdata(root, "Nonce", nonce)
        return etree.tostring(root, encoding="unicode")

    def open_xml(self, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> str:
        """The plaintext of a posted envelope (an event, or a passive reply when its own
        MsgSignature is given); CallbackCryptoError naming what is wrong."""
        root = read_xml(body)
        if root.tag != "xml":
            raise CallbackCryptoError("body", "the root element must be <xml>")
        encrypt = xml_text(root, "Encrypt")
        if not encrypt:
            raise CallbackCryptoError("Encrypt", "missing from the XML")
        return self.open(msg_signature, timestamp, nonce, encrypt)
