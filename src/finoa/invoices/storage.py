"""Files kept write-once as received: named by their SHA-256, never overwritten.

Invoice originals and the files of archive packages are kept this way.
`<directory>/<first two hex digits>/<sha256>`. A file is written to a temporary name in
the same directory, flushed to disk and linked to its final name; linking fails when the
name exists, so a stored file is never replaced (the same bytes stored twice are one file).
Files are made read-only. A file whose claim was never committed stays behind, harmless:
it is named by its content and referenced by nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path


class StoredFileDamaged(Exception):
    """A stored file no longer has the digest it was stored under."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class WriteOnceFiles:
    """A write-once directory of files named by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Store `data` unless it is stored already; its SHA-256."""
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.exists():
            self._check(target, digest)
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.parent / f".{digest}.{secrets.token_hex(6)}.tmp"
        with open(temporary, "xb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        try:
            os.chmod(temporary, 0o444)
            try:
                os.link(temporary, target)
            except FileExistsError:  # stored meanwhile by a concurrent upload of the same bytes
                self._check(target, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return digest

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def get(self, sha256: str) -> bytes:
        """The stored bytes, checked against their digest."""
        target = self.path(sha256)
        data = target.read_bytes()
        if sha256_hex(data) != sha256:
            raise StoredFileDamaged(f"{target.name}: content does not match its SHA-256")
        return data

    def _check(self, target: Path, digest: str) -> None:
        if sha256_hex(target.read_bytes()) != digest:
            raise StoredFileDamaged(f"{target.name}: content does not match its SHA-256")


class InvoiceFiles(WriteOnceFiles):
    """The write-once directory of invoice originals."""
