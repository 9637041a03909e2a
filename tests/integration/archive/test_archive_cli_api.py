"""`finoa archive …` as a real process, and the catalog API of a running hub."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import yaml
from support import invoices as build
from support.cli import finoa
from support.processes import free_port, start

from finoa.archive.service import Archive, PackageQuery, find_packages
from finoa.services.context import Hub


def config_file(hub: Hub, tmp_path: Path) -> Path:
    path = tmp_path / "finoa.yaml"
    path.write_text(yaml.safe_dump({"database_url": hub.settings.database_url}))
    return path


def test_build_search_check_from_the_command_line(
    hub: Hub, archive: Archive, posted: Callable[..., str], tmp_path: Path
) -> None:
    posted("OA-CLI-1", invoice=build.railway_xbrl())
    posted("OA-CLI-2", amount="1060.00")
    config = str(config_file(hub, tmp_path))
    data_dir = tmp_path / "data"
    built = finoa("archive", "build", "--config", config, data_dir=data_dir)
    assert built.returncode == 0, built.stderr
    assert "built 2 package(s): 四性检测 passed 2, failed 0" in built.stdout
    again = finoa("archive", "build", "--config", config, data_dir=data_dir)
    assert "nothing to build" in again.stdout and again.returncode == 0
    found = finoa(
        "archive", "search", "--min-amount", "600", "--json", "--config", config, data_dir=data_dir
    )
    (only,) = json.loads(found.stdout)
    assert only["total_fen"] == 106000 and only["retention"] == "D30"
    checked = finoa("archive", "check", "--json", "--config", config, data_dir=data_dir)
    assert checked.returncode == 0 and json.loads(checked.stdout)["passed"] is True
    with hub.db.engine.connect() as conn:
        record = find_packages(conn, PackageQuery(archive_no=only["archive_no"]))[0]
    claim = record.files[2]
    path = archive.store.files.path(claim.sha256)  # type: ignore[attr-defined]
    path.chmod(0o644)
    path.write_bytes(path.read_bytes().replace(b"1060", b"1061"))
    checked = finoa("archive", "check", "--json", "--config", config, data_dir=data_dir)
    assert checked.returncode == 1
    report = json.loads(checked.stdout)
    failing = [
        item["detail"]
        for p in report["packages"]
        for item in p["items"]
        if item["outcome"] == "fail"
    ]
    assert any(detail.startswith(f"{claim.name}: SHA-256 differs") for detail in failing), failing
    bad = finoa("archive", "search", "--period", "2026-13", "--config", config, data_dir=data_dir)
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[0] == "error: --period: month 13 is not 01-12"
    assert bad.stderr.splitlines()[1].startswith("fix: ") and "Traceback" not in bad.stderr


def test_the_catalog_api_searches_with_a_scope_and_names_bad_filters(
    hub: Hub, archive: Archive, posted: Callable[..., str], tmp_path: Path
) -> None:
    from finoa.archive.service import build_packages

    posted("OA-API-1", invoice=build.railway_xbrl())
    posted("OA-API-2", amount="1060.00")
    assert len(build_packages(hub.db, archive).built) == 2
    port = free_port()
    env = {
        "FINOA_CONFIG": str(config_file(hub, tmp_path)),
        "FINOA_DATA_DIR": str(tmp_path / "data"),
        "FINOA_CLIENTS": "reader:reader-secret:archive:read;nosy:nosy-secret:claims:read",
    }
    server = start("hub", ["serve", "--port", str(port)], env, "/ready", port, tmp_path)
    try:

        def token(client: str) -> dict[str, str]:
            answer = httpx.post(
                f"{server.url}/api/v1/oauth/token",
                data={"grant_type": "client_credentials", "client_id": client,
                      "client_secret": f"{client}-secret"},
            )  # fmt: skip
            answer.raise_for_status()
            return {"Authorization": f"Bearer {answer.json()['access_token']}"}

        reader = token("reader")
        url = f"{server.url}/api/v1/archive/packages"
        everything = httpx.get(url, params={"employee": "E0011"}, headers=reader).json()
        assert len(everything["packages"]) == 2
        assert all(p["latest_check"]["passed"] for p in everything["packages"])
        large = httpx.get(url, params={"min_amount": "600.00"}, headers=reader).json()["packages"]
        assert [p["total_fen"] for p in large] == [106000]
        invoice_no = next(p for p in everything["packages"] if p["invoice_numbers"])[
            "invoice_numbers"
        ][0]
        by_invoice = httpx.get(url, params={"invoice_number": invoice_no}, headers=reader).json()
        assert len(by_invoice["packages"]) == 1
        bad = httpx.get(url, params={"min_amount": "1e3"}, headers=reader)
        assert bad.status_code == 422
        assert bad.headers["content-type"].startswith("application/problem+json")
        assert "min_amount" in bad.text
        bad_period = httpx.get(url, params={"period": "2026-13"}, headers=reader)
        assert bad_period.status_code == 422 and "period" in bad_period.text
        assert httpx.get(url, headers=token("nosy")).status_code == 403
        package_id = large[0]["package_id"]
        checks = httpx.get(f"{url}/{package_id}/checks", headers=reader).json()
        assert checks["checks"][0]["stage"] == "archiving" and checks["checks"][0]["passed"]
        period = large[0]["period"]
        report = httpx.get(
            f"{server.url}/api/v1/archive/periods/{period}/report", headers=reader
        ).json()
        assert (report["packages"], report["passed"], report["failed"]) == (2, 2, 0)
        assert [i["outcome"] for i in report["period_items"]] == ["pass", "pass"]
        missing = httpx.get(f"{url}/AP-nothing/checks", headers=reader)
        assert missing.status_code == 404 and "package_id" in missing.text
    finally:
        server.stop()
