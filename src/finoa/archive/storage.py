"""Where package files live: a write-once store behind a small interface.

The filesystem store (the default) is the invoices' write-once directory: each file named by
its SHA-256, linked into place or not at all, read-only, never overwritten. Another backend
(an S3-compatible bucket with object lock, say) implements `ArchiveStore` the same way: `put`
must refuse to replace an object, and `read` returns the bytes as stored, unchecked, so that
the 四性检测 can name a damaged file itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives import hashes

from finoa.invoices.storage import StoredFileDamaged, WriteOnceFiles


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


WRITERS = 16  # files of a batch created at once


@runtime_checkable
class DestructibleStore(Protocol):
    """A store that can destroy files: destruction (鉴定销毁) is the one removal a
    write-once store allows, and its caller audits every file removed."""

    def remove(self, sha256: str) -> bool:
        """Remove the file; whether it was there."""
        ...


class FilesystemArchiveStore:
    """Package files in `<archive dir>/<first two hex digits>/<sha256>`, write-once.

    A batch is stored in steps, each over all its new files at once: written under temporary
    names, flushed to disk (the file system commits the flushes together), linked to their
    names, and each directory touched flushed once. A name therefore never points at bytes
    that are not on disk, and linking never replaces a stored file."""

    def __init__(self, root: Path) -> None:
        self.files = WriteOnceFiles(root)
        self._directories: set[Path] = set()  # known to exist

    def put_many(self, files: Iterable[bytes]) -> list[str]:
        digests: list[str] = []
        new: dict[str, tuple[Path, bytes]] = {}  # digest -> (target, bytes)
        for data in files:
            digest = sha256_hex(data)
            digests.append(digest)
            if digest in new:
                continue
            target = self.files.path(digest)
            if target.exists():
                _same(target, digest)
                continue
            new[digest] = (target, data)
        pending = {  # digest -> (temporary, target)
            digest: (target.parent / f".{digest}.{secrets.token_hex(6)}.tmp", target)
            for digest, (target, _) in new.items()
        }

        def write(digest: str) -> None:
            self._write(pending[digest][0], new[digest][1])

        def place(digest: str) -> None:
            temporary, target = pending[digest]
            try:
                os.link(temporary, target)
            except FileExistsError:  # stored meanwhile by another builder
                _same(target, digest)
            temporary.unlink()

        if not new:
            return digests
        # creating, flushing and linking a file mostly wait on the file system: many at once
        with ThreadPoolExecutor(max_workers=min(WRITERS, len(new))) as pool:
            try:
                list(pool.map(write, new))
                list(pool.map(_fsync, [temporary for temporary, _ in pending.values()]))
                list(pool.map(place, new))
                list(pool.map(_fsync, sorted({target.parent for _, target in pending.values()})))
            finally:
                for temporary, _ in pending.values():
                    with contextlib.suppress(FileNotFoundError):
                        temporary.unlink()
        return digests

    def _write(self, temporary: Path, data: bytes) -> None:
        directory = temporary.parent
        if directory not in self._directories:
            directory.mkdir(parents=True, exist_ok=True)
            self._directories.add(directory)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view) :]
        finally:
            os.close(descriptor)

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


def _same(target: Path, digest: str) -> None:
    """A file already stored under `digest` must still have it."""
    if sha256_hex(target.read_bytes()) != digest:
        raise StoredFileDamaged(f"{target.name}: content does not match its SHA-256")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
