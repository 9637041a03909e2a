"""An external archive that checks later: the hub (`finoa serve`) and the archive simulator
(`--delay-status`) as real processes, on both databases. The hub's dispatcher pushes the
package, the archive answers `received`, and its signed status callback to
`/api/v1/webhooks/<instance>` is recorded; a callback with a bad signature, or about a
package the hub does not have, is refused as problem+json naming the field."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select
from support import invoices as build
from support.processes import Server, free_port, start, start_configured_hub, wait_for

from finoa.archive.service import Archive, build_packages
from finoa.config import load_settings
from finoa.security.signatures import new_secret, signed_headers
from finoa.services.context import Hub
from finoa.services.masterdata import load_masterdata
from finoa.store.tables import archive_access_log, outbox

KEY = "archive-callback-key"
INSTANCE = "records"


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[tuple[Server, Server, dict[str, Any], str]]:
    """The archive simulator (status by callback after 0.2 s) and a hub with that archive as
    its archive instance (its OA and ERP are not running); the connectors, and the webhook
    secret."""
    secret = new_secret()
    hub_port, sim_port = free_port(), free_port()
    directory = tmp_path / "sim"
    directory.mkdir()
    sim = start(
        "archive",
        ["sim", "archive", "--port", str(sim_port), "--api-key", KEY,
         "--data-dir", str(directory), "--delay-status", "0.2", "--webhook-secret", secret,
         "--callback-url", f"http://127.0.0.1:{hub_port}/api/v1/webhooks/{INSTANCE}"],
        {}, "/_sim/stats", sim_port, directory,
    )  # fmt: skip
    nowhere = {"base_url": "http://127.0.0.1:9", "api_key": "unused"}  # never answers
    connectors = {
        "oa-main": {
            "connector": "generic-oa",
            "config": {**nowhere, "webhook_secret": new_secret()},
        },
        "erp-main": {"connector": "generic-erp", "config": nowhere},
        INSTANCE: {
            "connector": "generic-archive",
            "mode": "beside",
            "config": {"base_url": sim.url, "api_key": KEY, "webhook_secret": secret},
        },
    }
    env = {"FINOA_DATA_DIR": str(tmp_path / "data"), "FINOA_COMPANY_TAX_ID": build.COMPANY_TAX_ID,
           "FINOA_RETRY_BASE_SECONDS": "0.05", "FINOA_RETRY_CAP_SECONDS": "0.2",
           "FINOA_CLIENTS": "reader:reader-secret:archive:read"}  # fmt: skip
    try:
        hub = start_configured_hub(env, connectors, db_url, hub_port, tmp_path)
    except BaseException:
        sim.stop()
        raise
    yield hub, sim, connectors, secret
    hub.stop()
    sim.stop()


@pytest.fixture
def hub(
    db_url: str, tmp_path: Path, stack: tuple[Server, Server, dict[str, Any], str]
) -> Iterator[Hub]:
    """This process's view of the same hub (conftest's `posted` uses it): same database,
    data directory and connectors."""
    _, _, connectors, _ = stack
    config = tmp_path / "local.yaml"
    config.write_text(yaml.safe_dump({"connectors": connectors}))
    settings = load_settings(
        config, data_dir=tmp_path / "data", database_url=db_url,
        company_tax_id=build.COMPANY_TAX_ID,
    )  # fmt: skip
    hub = Hub.create(settings)
    load_masterdata(hub.db)
    yield hub
    hub.close()


def log_rows(hub: Hub, action: str) -> list[Any]:
    with hub.db.engine.connect() as conn:
        return conn.execute(
            select(archive_access_log)
            .where(archive_access_log.c.action == action)
            .order_by(archive_access_log.c.id)
        ).all()


def test_the_archives_status_callback_is_recorded_and_a_forged_one_refused(
    hub: Hub,
    archive: Archive,
    posted: Callable[..., str],
    stack: tuple[Server, Server, dict[str, Any], str],
    tmp_path: Path,
) -> None:
    server, sim, _, secret = stack
    assert archive.push_to == INSTANCE
    posted(f"CB-{tmp_path.name[-8:]}")
    (archive_no,) = build_packages(hub.db, archive).built

    # The running hub delivers the push; the archive answers `received`, checks, calls back.
    (pushed,) = wait_for(lambda: log_rows(hub, "pushed"), what="the push's answer")
    assert pushed.detail["status"] == "received" and pushed.detail["check_passed"] is False
    (status,) = wait_for(lambda: log_rows(hub, "external_status"), what="the status callback")
    assert status.package_id == pushed.package_id and status.actor == f"archive:{INSTANCE}"
    assert status.detail["archive_no"] == archive_no and status.detail["status"] == "archived"
    assert status.detail["check_passed"] is True and len(status.detail["items"]) == 4
    stats = wait_for(
        lambda: (
            (s := httpx.get(f"{sim.url}/_sim/stats", timeout=5).json())["callbacks_answered"] and s
        ),
        what="the callback's answer",
    )
    assert stats["packages"] == 1 and stats["callbacks_failed"] == 0
    with hub.db.engine.connect() as conn:
        (row,) = conn.execute(select(outbox).where(outbox.c.action == "archive.push")).all()
    assert row.status == "done"

    url = f"{server.url}/api/v1/webhooks/{INSTANCE}"
    event = {"type": "package.status", "data": {"archive_no": archive_no, "status": "rejected",
             "check": {"passed": False, "items": []}}}  # fmt: skip
    body = json.dumps(event).encode()
    headers = signed_headers(secret, "msg_forged", body)
    forged = httpx.post(url, content=body, headers={**headers, "webhook-signature": "v1,AAAA"})
    assert forged.status_code == 401
    assert forged.headers["content-type"].startswith("application/problem+json")
    assert forged.json()["field"] == "webhook-signature"
    wrong_secret = signed_headers(new_secret(), "msg_other", body)
    assert httpx.post(url, content=body, headers=wrong_secret).status_code == 401

    # A genuine later status is recorded once; the same message again is a duplicate.
    genuine = signed_headers(secret, "msg_rejected", body)
    first = httpx.post(url, content=body, headers=genuine)
    assert first.status_code == 200, first.text
    assert first.json() == {"package_id": pushed.package_id, "archive_no": archive_no,
                            "status": "rejected", "duplicate": False}  # fmt: skip
    again = httpx.post(url, content=body, headers=genuine)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert [r.detail["status"] for r in log_rows(hub, "external_status")] == [
        "archived", "rejected",
    ]  # fmt: skip
    # The catalog over the API shows what the external archive says last, beside the record.
    token = httpx.post(
        f"{server.url}/api/v1/oauth/token",
        data={"grant_type": "client_credentials", "client_id": "reader",
              "client_secret": "reader-secret"},
    ).json()["access_token"]  # fmt: skip
    catalog = httpx.get(
        f"{server.url}/api/v1/archive/packages", params={"archive_no": archive_no},
        headers={"Authorization": f"Bearer {token}"},
    ).json()  # fmt: skip
    assert catalog["record"] == "built-in"  # mode beside: the built-in archive is the record
    (listed,) = catalog["packages"]
    said = listed["external"]
    assert said["status"] == "rejected" and said["check_passed"] is False

    unknown = json.dumps({**event, "data": {**event["data"], "archive_no": "F001-NONE"}}).encode()
    missing = httpx.post(url, content=unknown, headers=signed_headers(secret, "msg_x", unknown))
    assert missing.status_code == 404 and missing.json()["field"] == "data.archive_no"
    bad = json.dumps({**event, "data": {**event["data"], "status": "Done!"}}).encode()
    invalid = httpx.post(url, content=bad, headers=signed_headers(secret, "msg_y", bad))
    assert invalid.status_code == 422
    assert "status" in json.dumps(invalid.json())
