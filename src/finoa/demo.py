"""`finoa demo`: the whole loop on one machine, with no servers to install.

Starts the hub, an OA and an ERP as separate processes on the embedded default (SQLite) —
the generic simulators, or any connector's system through its demo profile (`demo_stack`) —
submits realistic claims (some invalid, some sent twice) through the REST API and through the
OA, lets the simulated approvers decide, and reports what happened end to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from finoa.archive.service import BuildSummary, archive_posted
from finoa.config import load_settings
from finoa.connectors.instances import HUB_LED
from finoa.demo_stack import DemoContext, DemoProfile, demo_profiles, free_port
from finoa.services.audit_trail import verify_audit_chain
from finoa.store.uow import Database

CATEGORIES = {
    # category: (typical low, typical high in yuan, VAT rate deductible or None)
    "travel": (300, 4000, Decimal("0.09")),
    "lodging": (200, 3000, Decimal("0.06")),
    "entertainment": (200, 5000, None),
    "transport": (20, 600, Decimal("0.03")),
    "office": (50, 2000, Decimal("0.13")),
    "communication": (50, 500, Decimal("0.06")),
    "training": (500, 20000, Decimal("0.06")),
    "meeting": (1000, 60000, Decimal("0.06")),
}
ACTIVE_EMPLOYEES = {
    "D01": ["E0004", "E0003"],
    "D02": ["E0011", "E0012", "E0013", "E0010"],
    "D03": ["E0021", "E0022", "E0023", "E0020"],
    "D04": ["E0031", "E0032", "E0030"],
    "D05": ["E0041", "E0040"],
}
INVALID_KINDS = (
    "unknown employee",
    "unknown department",
    "negative amount",
    "three decimals",
    "unknown category",
    "departed employee",
    "missing title",
)


@dataclass
class PlannedClaim:
    body: dict[str, Any]
    via: str  # "api" or "oa"
    valid: bool
    resend: bool = False
    invalid_kind: str | None = None


@dataclass
class Tally:
    accepted: int = 0
    invalid: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)
    invalid_reasons: dict[str, str] = field(default_factory=dict)


def plan_claims(n: int, seed: int) -> list[PlannedClaim]:
    """n claims: mixed departments, categories and amounts; ~6% invalid, ~6% sent twice."""
    rng = random.Random(seed)
    today = date.today()
    planned = []
    for i in range(n):
        department = rng.choice(sorted(ACTIVE_EMPLOYEES))
        applicant = rng.choice(ACTIVE_EMPLOYEES[department])
        lines = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            category = rng.choice(sorted(CATEGORIES))
            low, high, rate = CATEGORIES[category]
            amount = Decimal(rng.randint(low * 100, high * 100)) / 100
            if rng.random() < 0.03:
                amount = Decimal(rng.randint(50_000, 120_000))  # a large conference
            tax = (amount / (1 + rate) * rate).quantize(Decimal("0.01")) if rate else Decimal(0)
            lines.append(
                {
                    "category": category,
                    "amount": str(amount),
                    "tax": str(tax),
                    "expense_date": (today - timedelta(days=rng.randint(1, 30))).isoformat(),
                    "description": f"{category} expense",
                    "invoice_refs": [f"{rng.randint(10**19, 10**20 - 1)}"],
                }
            )
        body = {
            "external_id": f"DEMO-{seed}-{i:05d}",
            "applicant_id": applicant,
            "department_id": department,
            "title": f"Claim {i} from {applicant}",
            "lines": lines,
        }
        via = "oa" if i % 2 else "api"
        claim = PlannedClaim(body, via, valid=True)
        if rng.random() < 0.06:
            kind = rng.choice(INVALID_KINDS)
            _spoil(body, kind)
            claim.valid = False
            claim.invalid_kind = kind
        elif rng.random() < 0.065:
            claim.resend = True
        planned.append(claim)
    return planned


def _spoil(body: dict[str, Any], kind: str) -> None:
    line = body["lines"][0]
    if kind == "unknown employee":
        body["applicant_id"] = "E9999"
    elif kind == "unknown department":
        body["department_id"] = "D99"
    elif kind == "negative amount":
        line["amount"] = "-120.00"
    elif kind == "three decimals":
        line["amount"] = "88.125"
    elif kind == "unknown category":
        line["category"] = "yacht"
    elif kind == "departed employee":
        body["applicant_id"] = "E0099"
    elif kind == "missing title":
        del body["title"]


@contextlib.contextmanager
def _processes(
    commands: list[tuple[str, list[str]]], env: dict[str, str], logs: Path
) -> Iterator[None]:
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for name, args in commands:
            log = (logs / f"{name}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "finoa", *args],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        yield
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


async def _wait_ready(urls: list[str], deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    async with httpx.AsyncClient(timeout=2) as client:
        for url in urls:
            while True:
                try:
                    if (await client.get(url)).status_code < 500:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not come up; see the logs in the data dir")
                await asyncio.sleep(0.1)


async def _submit_all(
    planned: list[PlannedClaim],
    hub: str,
    oa: tuple[DemoProfile, DemoContext],
    token: str,
    tally: Tally,
    progress: Any,
    task_id: Any,
) -> None:
    semaphore = asyncio.Semaphore(16)
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=30) as client:

        async def send(claim: PlannedClaim, attempt: int) -> None:
            async with semaphore:
                through_oa = None
                if claim.via == "oa":
                    through_oa = await oa[0].submit(client, oa[1], claim.body)
                if through_oa is not None:
                    status, body, duplicate = through_oa
                else:
                    response = await client.post(
                        f"{hub}/api/v1/claims",
                        json=claim.body,
                        headers={**headers, "idempotency-key": claim.body["external_id"]},
                    )
                    status, body = response.status_code, response.json()
                    duplicate = response.headers.get("finoa-duplicate") == "true"
            if status in (200, 201) and duplicate:
                tally.duplicates += 1
            elif status in (200, 201):
                tally.accepted += 1
            elif 400 <= status < 500:
                tally.invalid += 1
                detail = body.get("detail", "") if isinstance(body, dict) else str(body)
                tally.invalid_reasons[claim.invalid_kind or "?"] = detail
            else:
                tally.errors.append(f"{claim.body.get('external_id')}: HTTP {status}")
            if attempt == 0:
                progress.advance(task_id)

        await asyncio.gather(*(send(c, 0) for c in planned))
        await asyncio.gather(*(send(c, 1) for c in planned if c.resend))


async def _follow(
    hub: str, token: str, expected: int, progress: Any, task_id: Any, timeout_s: float
) -> dict[str, Any]:
    headers = {"authorization": f"Bearer {token}"}
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=10) as client:
        while True:
            stats: dict[str, Any] = (
                await client.get(f"{hub}/api/v1/stats", headers=headers)
            ).json()
            done = stats["written_back_final"]
            progress.update(task_id, completed=done)
            pending = stats["outbox"].get("pending", 0) + stats["outbox"].get("inflight", 0)
            if (done >= expected and pending == 0) or time.monotonic() > deadline:
                return stats
            await asyncio.sleep(0.2)  # progress display refresh, not synchronization


def run_demo(
    n: int,
    exit_when_done: bool,
    data_dir: Path,
    port: int,
    seed: int,
    console: Console,
    *,
    oa: str = "generic",
    erp: str = "generic",
    approvals: str = HUB_LED,
) -> int:
    """Run the loop with the OA and ERP named (`--oa`, `--erp`); raises DemoProfileError for
    a name or approval mode the demo cannot run, before anything is started."""
    oa_profile, erp_profile = demo_profiles(oa, erp, approvals)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, mode=0o700)
    hub_port = free_port(port)
    # beside the hub's port when one is asked for; any free ports with --port 0
    oa_port, erp_port = (free_port(port + 1 if port else 0), free_port(port + 2 if port else 0))
    hub = f"http://127.0.0.1:{hub_port}"
    settings = load_settings(data_dir=data_dir)  # creates the shared secrets file
    secrets: dict[str, str] = json.loads((data_dir / "secrets.json").read_text())
    oa_ctx = DemoContext(data_dir, hub, oa_port, approvals, 0.06, secrets)
    erp_ctx = DemoContext(data_dir, hub, erp_port, approvals, 0.06, secrets)
    env = {
        **os.environ,
        "FINOA_DATA_DIR": str(data_dir),
        # the demo archives every posted voucher itself once the loop is done (its table)
        "FINOA_ARCHIVE_EVERY_SECONDS": "0",
        "FINOA_PORT": str(hub_port),
        "FINOA_OA_BASE_URL": oa_ctx.url,
        "FINOA_ERP_BASE_URL": erp_ctx.url,
    }
    env.pop("FINOA_DATABASE_URL", None)
    env.pop("FINOA_CONFIG", None)
    erp_profile.prepare(erp_ctx)
    oa_profile.prepare(oa_ctx)
    oa_credentials, erp_credentials = (
        oa_profile.credentials(oa_ctx),
        erp_profile.credentials(erp_ctx),
    )
    config: Path | None = None
    if (oa_profile.connector, erp_profile.connector) != ("generic-oa", "generic-erp"):
        # anything but the embedded default pair: the two instances in a finoa.yaml
        config = data_dir / "finoa.yaml"
        connectors = {
            oa_profile.instance_name: oa_profile.instance(oa_ctx, oa_credentials),
            erp_profile.instance_name: erp_profile.instance(erp_ctx, erp_credentials),
        }
        config.write_text(
            yaml.safe_dump({"connectors": connectors}, allow_unicode=True), encoding="utf-8"
        )
        env["FINOA_CONFIG"] = str(config)
    subprocess.run(
        [sys.executable, "-m", "finoa", "masterdata", "load"],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    commands = [
        ("erp", erp_profile.command(erp_ctx)),
        ("oa", oa_profile.command(oa_ctx)),
        ("hub", ["serve", "--port", str(hub_port)]),
    ]
    planned = plan_claims(n, seed)
    tally = Tally()
    with _processes(commands, env, data_dir):
        asyncio.run(
            _wait_ready(
                [
                    f"{hub}/ready",
                    oa_ctx.url + oa_profile.ready_path,
                    erp_ctx.url + erp_profile.ready_path,
                ]
            )
        )
        token = httpx.post(
            f"{hub}/api/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": "finoa-admin",
                "client_secret": secrets["admin_client_secret"],
            },
        ).json()["access_token"]
        started = time.monotonic()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress:
            submitting = progress.add_task("submitting claims", total=len(planned))
            asyncio.run(
                _submit_all(planned, hub, (oa_profile, oa_ctx), token, tally, progress, submitting)
            )
            finishing = progress.add_task(
                "approved/rejected → posted → written back", total=tally.accepted
            )
            stats = asyncio.run(
                _follow(hub, token, tally.accepted, progress, finishing, timeout_s=120 + n * 0.2)
            )
        elapsed = time.monotonic() - started
        vouchers = erp_profile.vouchers(erp_ctx, erp_credentials)
        db = Database.connect(settings.effective_database_url)
        try:
            chain = verify_audit_chain(db)
        finally:
            db.dispose()
        systems = f"{oa_profile.title} ({approvals}) × {erp_profile.title}"
        archived = archive_posted(settings)
        ok = _report(
            console, tally, stats, vouchers, chain.ok, chain.checked, elapsed, systems, archived
        )
        claim_id = _a_claim_id(hub, token)
        later_port = port or settings.port
        for line in what_to_try_next(
            data_dir,
            hub_port if not exit_when_done else later_port,
            claim_id,
            exit_when_done,
            config,
        ):
            console.print(line, soft_wrap=True, markup=False, highlight=False)
        if exit_when_done:
            return 0 if ok else 1
        console.print(
            f"\nfinoa is serving at [bold]{hub}[/bold]; {oa_profile.title} {oa_ctx.url}, "
            f"{erp_profile.title} {erp_ctx.url}. Ctrl-C to stop."
        )
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0 if ok else 1


def _a_claim_id(hub: str, token: str) -> str | None:
    """A posted claim's id (else any claim's), to show how to read one through the API."""
    headers = {"authorization": f"Bearer {token}"}
    queries: tuple[dict[str, str | int], ...] = (
        {"status": "posted", "page_size": 1},
        {"page_size": 1},
    )
    for params in queries:
        items = httpx.get(f"{hub}/api/v1/claims", params=params, headers=headers).json()["items"]
        if items:
            return str(items[0]["id"])
    return None


def finoa_invocation() -> str:
    """How a shell opened here runs this same finoa: `finoa` when it is the one on PATH,
    else the path of this installation's script (e.g. `.venv/bin/finoa`)."""
    script = Path(sys.executable).parent / "finoa"
    if not script.exists():
        return f"{shlex.quote(sys.executable)} -m finoa"
    on_path = shutil.which("finoa")
    if on_path is not None and Path(on_path).resolve() == script.resolve():
        return "finoa"
    try:
        shown = script.absolute().relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(script.absolute()))
    return shlex.quote(str(shown) if shown.parent != Path(".") else f"./{shown}")


def what_to_try_next(
    data_dir: Path, port: int, claim_id: str | None, stopped: bool, config: Path | None = None
) -> list[str]:
    """The commands that inspect what the demo did, each with the demo's --data-dir, ready to
    paste: a heading, then for each step a line saying what it does and the command on the
    next line, indented by four spaces. `stopped`: the hub is no longer serving, so the API
    steps say how to serve the demo's data again (with the demo's finoa.yaml, `config`, when
    it wrote one)."""
    finoa = finoa_invocation()
    serve_with = f"FINOA_CONFIG={shlex.quote(str(config))} " if config is not None else ""
    where = f"--data-dir {shlex.quote(str(data_dir))}"
    hub = f"http://127.0.0.1:{port}"
    claim = f"{hub}/api/v1/claims/{claim_id}" if claim_id else f"{hub}/api/v1/claims"
    steps = [
        ("Check that the audit trail is intact:", f"{finoa} audit verify {where}"),
        ("List dead letters (and replay them with --id N):", f"{finoa} replay {where}"),
        ("See accounting periods and their vouchers:", f"{finoa} periods list {where}"),
        ("Run the 四性检测 of the archive packages again:", f"{finoa} archive check {where}"),
        ("Search the archive catalog:", f"{finoa} archive search --min-amount 100 {where}"),
    ]
    if stopped:
        steps.append(
            (
                "Serve the demo's data again (the API steps below need it):",
                f"{serve_with}{finoa} serve {where} --port {port}",
            )
        )
    steps += [
        (
            "Get an API token (client finoa-admin; POST /api/v1/oauth/token issues the same "
            f"with the secret in {data_dir / 'secrets.json'}):",
            f"{finoa} token {where}",
        ),
        (
            "Read a claim through the API with it:",
            f'curl -sS -H "Authorization: Bearer $({finoa} token {where})" {claim}',
        ),
    ]
    lines = ["", "What to try next (paste from this folder):"]
    for what, command in steps:
        lines += [f"  {what}", f"    {command}"]
    lines.append(f"  The API's documentation, while the hub serves: {hub}/docs")
    return lines


def _report(
    console: Console,
    tally: Tally,
    stats: dict[str, Any],
    erp_vouchers: int,
    chain_ok: bool,
    chain_checked: int,
    elapsed: float,
    systems: str,
    archived: BuildSummary,
) -> bool:
    claims = stats["claims"]
    posted = claims.get("posted", 0)
    rejected = claims.get("rejected", 0)
    dead = stats["outbox"].get("dead", 0)
    table = Table(title=f"finoa demo: the reimbursement loop\n{systems}", show_header=True)
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("received (accepted)", tally.accepted),
        ("rejected as invalid", tally.invalid),
        ("approved", posted + claims.get("approved", 0)),
        ("rejected by approvers", rejected),
        ("posted to the ERP", posted),
        ("vouchers in the ERP", erp_vouchers),
        ("written back (final status in OA)", stats["written_back_final"]),
        ("duplicates ignored", tally.duplicates),
        ("dead letters", dead),
    ]
    for name, value in rows:
        table.add_row(name, str(value))
    p50, p99 = stats["latency_p50_ms"], stats["latency_p99_ms"]
    table.add_row("p50 submit → written back", f"{p50:.0f} ms" if p50 is not None else "-")
    table.add_row("p99 submit → written back", f"{p99:.0f} ms" if p99 is not None else "-")
    table.add_row("wall time", f"{elapsed:.1f} s")
    table.caption = (
        "Latencies include queueing: the demo sends every claim at once (16 in flight); "
        "`make bench` measures a paced load."
    )
    table.add_row("audit chain", f"{'intact' if chain_ok else 'BROKEN'} ({chain_checked} events)")
    packages = len(archived.built) + archived.existing
    table.add_row("archived (one package per voucher)", str(packages))
    table.add_row(
        "四性检测 of the packages",
        f"{archived.checks_passed} passed, {archived.checks_failed} failed",
    )
    console.print(table)
    if tally.invalid_reasons:
        reasons = Table("invalid claim", "refused with", title="Some refusals")
        for kind, detail in sorted(tally.invalid_reasons.items()):
            reasons.add_row(kind, detail[:100])
        console.print(reasons)
    ok = (
        chain_ok
        and not tally.errors
        and dead == 0
        and posted + rejected == tally.accepted
        and erp_vouchers == posted
        and stats["written_back_final"] == tally.accepted
        and packages == posted
        and archived.checks_failed == 0
        and not archived.refused
    )
    if archived.refused:
        console.print(f"[red]not archived:[/red] {archived.refused[:5]}")
    if tally.errors:
        console.print(f"[red]errors:[/red] {tally.errors[:5]}")
    console.print(
        "[green]every valid claim reached a final state exactly once[/green]"
        if ok
        else "[red]the loop did not complete cleanly; see the logs[/red]"
    )
    return ok
