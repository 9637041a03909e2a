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
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


class StoredFileDamaged(Exception):
    """A stored file no longer has the digest it was stored under."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class WriteOnceFiles:
    """A write-once directory of files named by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def put(self, data: bytes, *, sync: bool = True) -> str:
        """Store `data` unless it is stored already; its SHA-256. With `sync` off the file is
        not yet flushed to disk: call `sync` on the digests before relying on them."""
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
            if sync:
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
        if sync:
            _fsync(target.parent)
        return digest

    def sync(self, digests: Iterable[str]) -> None:
        """Flush the files stored under `digests` and their directories to disk. The flushes
        run concurrently, so that the file system commits them together."""
        paths = {self.path(d) for d in digests}
        targets = sorted(paths) + sorted({p.parent for p in paths})
        if not targets:
            return
        with ThreadPoolExecutor(max_workers=min(32, len(targets))) as pool:
            list(pool.map(_fsync, targets))

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
