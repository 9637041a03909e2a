"""The hub's client to a generic external archive: pushes one package with its metadata and
files, and reads the archive's answer (status, 四性检测 result)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import httpx

from finoa.connectors.generic_archive.wire import PUSH_PATH


class ArchiveRefused(Exception):
    """The external archive refused a package; `file` names the file when it said which."""

    def __init__(self, status: int, detail: str, file: str | None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.file = status, detail, file


@dataclass(frozen=True)
class ArchiveAnswer:
    archive_no: str
    status: str
    check_passed: bool
    items: list[dict[str, Any]]


class GenericArchiveClient:
    def __init__(self, base_url: str, api_key: str, http: httpx.Client) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {"authorization": f"Bearer {api_key}"}
        self.http = http

    def push(
        self,
        package_id: str,
        archive_no: str,
        metadata: dict[str, Any],
        files: list[tuple[dict[str, Any], bytes]],
    ) -> ArchiveAnswer:
        body = {
            "package_id": package_id,
            "archive_no": archive_no,
            "metadata": metadata,
            "files": [
                {**entry, "content_base64": base64.b64encode(data).decode()}
                for entry, data in files
            ],
        }
        response = self.http.post(
            self.base_url + PUSH_PATH,
            json=body,
            headers={**self.headers, "idempotency-key": package_id},
        )
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {}
            detail = str(problem.get("detail") or response.text[:300])
            raise ArchiveRefused(response.status_code, detail, problem.get("file"))
        return _answer(response.json())

    def status(self, archive_no: str) -> ArchiveAnswer:
        response = self.http.get(f"{self.base_url}{PUSH_PATH}/{archive_no}", headers=self.headers)
        response.raise_for_status()
        return _answer(response.json())


def _answer(value: dict[str, Any]) -> ArchiveAnswer:
    check = value.get("check") or {}
    return ArchiveAnswer(
        archive_no=str(value["archive_no"]),
        status=str(value["status"]),
        check_passed=bool(check.get("passed")),
        items=list(check.get("items") or []),
    )
