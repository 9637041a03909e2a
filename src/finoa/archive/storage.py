"""Where package files live: a write-once store behind a small interface.

The filesystem store (the default) is the invoices' write-once directory: each file named by
its SHA-256, linked into place or not at all, read-only, never overwritten. Another backend
(an S3-compatible bucket with object lock, say) implements `ArchiveStore` the same way: `put`
must refuse to replace an object, and `read` returns the bytes as stored, unchecked, so that
the 四性检测 can name a damaged file itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes

from finoa.invoices.storage import WriteOnceFiles


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sm3_hex(data: bytes) -> str:
    """SM3 (GB/T 32905) of `data`, through OpenSSL."""
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize().hex()


class ArchiveStore(Protocol):
    def put_many(self, files: Iterable[bytes]) -> list[str]:
        """Store each of `files` write-once, all durable when this returns; their SHA-256s."""
        ...

    def read(self, sha256: str) -> bytes:
        """The stored bytes as they are now (unchecked); OSError when missing or unreadable."""
        ...

    def exists(self, sha256: str) -> bool: ...

    def location(self, sha256: str) -> str:
        """Where the file is kept, for the metadata's 存储位置."""
        ...


@runtime_checkable
class DestructibleStore(Protocol):
    """A store that can destroy files: destruction (鉴定销毁) is the one removal a
    write-once store allows, and its caller audits every file removed."""

    def remove(self, sha256: str) -> bool:
        """Remove the file; whether it was there."""
        ...


class FilesystemArchiveStore:
    """Package files in `<archive dir>/<first two hex digits>/<sha256>`, write-once."""

    def __init__(self, root: Path) -> None:
        self.files = WriteOnceFiles(root)

    def put_many(self, files: Iterable[bytes]) -> list[str]:
        digests = [self.files.put(data, sync=False) for data in files]
        self.files.sync(digests)  # one concurrent flush for the lot
        return digests

    def read(self, sha256: str) -> bytes:
        return self.files.path(sha256).read_bytes()

    def exists(self, sha256: str) -> bool:
        return self.files.exists(sha256)

    def remove(self, sha256: str) -> bool:
        try:
            self.files.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def location(self, sha256: str) -> str:
        return f"{sha256[:2]}/{sha256}"
