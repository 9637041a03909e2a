"""Benchmark: what encrypted OA callbacks cost, beside the generic OA in the same run.

1. The inbound handler alone: `verify` per callback (µs), for the generic OA (Standard
   Webhooks HMAC-SHA256), Weaver (HMAC-SHA256 over timestamp and body), DingTalk
   (SHA-1 signature, AES-256-CBC decrypt of a JSON envelope) and WeCom (the same crypto in
   an XML envelope whose plaintext is XML again), each over fresh callbacks.
2. The loop end to end, each stack in real processes on a fresh SQLite database: the hub,
   the ERP simulator and one OA simulator whose approvers approve everything. The generic
   OA runs hub-led (its decisions come back as signed plaintext webhooks); DingTalk and
   WeCom run hub-led too (the same flow: a todo per task, each decision an encrypted
   callback, so the difference is the vendor's wire and crypto) and OA-led (the claim's
   approval runs in the OA; its result comes back as an encrypted callback). For each: claims/s
   from the first submission to the last final status written back, and the p50/p99 from
   the decision applied in the hub (the callback) to the final status written back to the
   OA. The ratios to the generic figures are what to read: the machine is shared.

The vendors' simulators hold the hub to an app's quota (50 calls a second, finoa paced at
it): the vendors' loops are bound by it, and each reports its calls per claim and the
claims/s that quota allows (`quota_bound_claims_per_s`). `--vendor-qps N` gives the app a
larger quota (the simulators refuse beyond it, finoa is paced at it), to show what the
callbacks' crypto and wire cost the hub itself.

Usage: python bench/callbacks.py [--claims 100] [--concurrency 8] [--callbacks 5000]
       [--approval hub-led|oa-led|both] [--vendor-qps N] [--skip-loop] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from cpu import CpuShares  # noqa: E402  (bench/, the script's folder, is on the path)
from loop import final_times, pct, submit_closed_loop, wait_final  # noqa: E402
from support.dingtalk import dingtalk_stack  # noqa: E402
from support.processes import stack  # noqa: E402
from support.wecom import wecom_stack  # noqa: E402

from finoa.api.json_body import parse_json  # noqa: E402
from finoa.connectors.base import InboundRequest  # noqa: E402
from finoa.connectors.vendor_sim import DEFAULT_QPS  # noqa: E402

NOW = time.time()
# The vendors' own retry schedule for callbacks the hub did not take (the test stacks shorten
# it 20-fold, which gives up within seconds when a burst keeps the hub busy).
VENDOR_RETRY = ("--retry-scale", "1")
VENDOR_QPS = DEFAULT_QPS  # the simulators' quota of an app, calls a second
EVENT = {"eventId": "e", "processInstanceId": "PI-1", "type": "finish", "result": "agree"}


def generic_requests(n: int) -> tuple[Any, list[InboundRequest]]:
    from finoa.connectors.generic_oa.inbound import GenericOAInbound
    from finoa.security.signatures import signed_headers

    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    handler = GenericOAInbound({"webhook_secret": secret})
    body = json.dumps({"type": "decision", "data": EVENT}).encode()
    return handler, [
        InboundRequest("oa", signed_headers(secret, f"msg_{i}", body), body, {}, parse_json)
        for i in range(n)
    ]


def weaver_requests(n: int) -> tuple[Any, list[InboundRequest]]:
    from finoa.connectors.weaver.inbound import WeaverInbound, callback_signature

    secret, appid = "callback-secret-0123456789", "EEAA5436-7577-4BE0-8C6C-89E9D88805EA"
    handler = WeaverInbound({"appid": appid, "callback_secret": secret})
    requests = []
    for i in range(n):
        body = json.dumps({"eventid": f"e{i}", "requestid": "447001", "operate": "archive"})
        stamp = str(int(NOW * 1000))
        headers = {"appid": appid, "timestamp": stamp,
                   "sign": callback_signature(secret, stamp, body.encode())}  # fmt: skip
        requests.append(InboundRequest("weaver", headers, body.encode(), {}, parse_json))
    return handler, requests


def dingtalk_requests(n: int) -> tuple[Any, list[InboundRequest]]:
    from finoa.connectors.dingtalk.crypto import CallbackCrypto, new_encoding_aes_key
    from finoa.connectors.dingtalk.inbound import DingTalkInbound

    key = new_encoding_aes_key()
    config = {"app_key": "dingapp", "app_secret": "secret", "token": "tok", "aes_key": key,
              "process_code": "PROC-1", "callback_url": "http://hub.example/d"}  # fmt: skip
    crypto = CallbackCrypto("tok", key, "dingapp")
    handler = DingTalkInbound(config)
    requests = []
    for i in range(n):
        sealed = crypto.envelope(json.dumps({**EVENT, "eventId": f"e{i}"}),
                                 timestamp=str(int(NOW * 1000)))  # fmt: skip
        query = {"msg_signature": sealed["msg_signature"], "timestamp": sealed["timeStamp"],
                 "nonce": sealed["nonce"]}  # fmt: skip
        body = json.dumps({"encrypt": sealed["encrypt"]}).encode()
        requests.append(InboundRequest("dingtalk", {}, body, query, parse_json))
    return handler, requests


def wecom_requests(n: int) -> tuple[Any, list[InboundRequest]]:
    from finoa.connectors.dingtalk.crypto import new_encoding_aes_key, new_nonce
    from finoa.connectors.wecom.crypto import WeComCrypto
    from finoa.connectors.wecom.inbound import WeComInbound

    corp, key = "ww1234567890abcdef", new_encoding_aes_key()
    config = {"corp_id": corp, "corp_secret": "s", "token": "QDG6eK", "aes_key": key,
              "template_id": "C4NyFinoaExpenseClaim"}  # fmt: skip
    crypto = WeComCrypto("QDG6eK", key, corp)
    handler = WeComInbound(config)
    requests = []
    for i in range(n):
        event = (
            f"<xml><ToUserName><![CDATA[{corp}]]></ToUserName><CreateTime>{int(NOW)}</CreateTime>"
            "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[sys_approval_change]]></Event>"
            f"<ApprovalInfo><SpNo>{202611010000 + i}</SpNo><SpStatus>2</SpStatus>"
            "<TemplateId><![CDATA[C4NyFinoaExpenseClaim]]></TemplateId>"
            "<StatuChangeEvent>2</StatuChangeEvent></ApprovalInfo></xml>"
        )
        envelope = crypto.event_xml(event, to_user=corp, agent_id=1000002)
        encrypt = envelope.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        stamp, nonce = str(int(NOW)), new_nonce(10)
        query = {"msg_signature": crypto.sign(stamp, nonce, encrypt), "timestamp": stamp,
                 "nonce": nonce}  # fmt: skip
        requests.append(InboundRequest("wecom", {}, envelope.encode(), query, parse_json))
    return handler, requests


HANDLERS: dict[str, Callable[[int], tuple[Any, list[InboundRequest]]]] = {
    "generic": generic_requests,
    "weaver": weaver_requests,
    "dingtalk": dingtalk_requests,
    "wecom": wecom_requests,
}


def verify_cost(n: int) -> dict[str, Any]:
    """µs per `verify` (the median of 5 rounds over n fresh callbacks each)."""

    async def rounds(handler: Any, requests: list[InboundRequest]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            for request in requests:
                await handler.verify(request)
            times.append((time.perf_counter() - started) / len(requests))
        return statistics.median(times)

    figures: dict[str, Any] = {}
    for name, make in HANDLERS.items():
        handler, requests = make(n)
        figures[f"{name}_us"] = round(asyncio.run(rounds(handler, requests)) * 1e6, 1)
    base = figures["generic_us"]
    for name in HANDLERS:
        if name != "generic":
            figures[f"{name}_over_generic"] = round(figures[f"{name}_us"] / base, 2)
    return figures


def decided_epochs(database_url: str) -> dict[str, float]:
    """Each claim's external id → when its last decision was applied in the hub: its last
    approval task decided (hub-led) or its OA approval concluded (OA-led)."""
    from sqlalchemy import func, select

    from finoa.store.tables import approval_tasks, claims, oa_approvals
    from finoa.store.uow import Database

    db = Database.connect(database_url)
    with db.engine.connect() as conn:
        tasks = conn.execute(
            select(claims.c.external_id, func.max(approval_tasks.c.decided_at))
            .select_from(claims.join(approval_tasks, approval_tasks.c.claim_id == claims.c.id))
            .group_by(claims.c.external_id)
        ).all()
        concluded = conn.execute(
            select(claims.c.external_id, oa_approvals.c.updated_at).select_from(
                claims.join(oa_approvals, oa_approvals.c.claim_id == claims.c.id)
            )
        ).all()
    db.dispose()
    found: dict[str, float] = {}
    for external_id, at in [*tasks, *concluded]:
        if at is not None:
            found[external_id] = (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()
    return found


def loop_figures(
    name: str, running: Any, work: Path, database_url: str, args: argparse.Namespace
) -> dict[str, Any]:
    hub, token = running.hub.url, running.token()
    tag = f"CB-{name}"
    vendor = getattr(running, "dingtalk", None) or getattr(running, "wecom", None)
    oa = vendor.server if vendor is not None else getattr(running, "oa", None)
    roles = {"hub": [running.hub.process.pid]}
    if oa is not None:  # the simulated OA is the load generator of the callbacks
        roles["oa simulator"] = [oa.process.pid]
    shares = CpuShares(roles)
    asyncio.run(submit_closed_loop(hub, token, args.claims, tag, args.concurrency))
    stats = asyncio.run(wait_final(hub, token, 600))
    used, _ = shares.cpu_seconds()
    times = [t for t in final_times(work, database_url) if t[0].startswith(tag)]
    decided = decided_epochs(database_url)
    waits = [done - decided[e] for e, _, done in times if e in decided]
    first, last = min(s for _, s, _ in times), max(d for _, _, d in times)
    figures = {
        "claims": len(times),
        "end_to_end_claims_per_s": round(len(times) / (last - first), 1),
        "decision_to_written_back_p50_ms": round(pct(waits, 50) * 1000, 1) if waits else None,
        "decision_to_written_back_p99_ms": round(pct(waits, 99) * 1000, 1) if waits else None,
        "dead_letters": stats["outbox"].get("dead", 0),
        # the hub's own work per claim, apart from the simulated vendor's on the same cores
        "hub_cpu_ms_per_claim": round(used["hub"] / len(times) * 1000, 2),
    }
    if "oa simulator" in used:  # it must not be what binds the loop
        per_claim_ms = used["oa simulator"] / len(times) * 1000
        figures["oa_simulator_cpu_ms_per_claim"] = round(per_claim_ms, 2)
        figures["oa_simulator_cores"] = round(used["oa simulator"] / (last - first), 2)
    if vendor is not None:  # what the loop cost at the vendor's API, whose quota bounds it
        sim = vendor.get("/_sim/stats")
        per_claim = sum(sim["api_calls"].values()) / len(times)
        figures["vendor_calls_per_claim"] = round(per_claim, 2)
        figures["vendor_rate_limited"] = sim["rate_limited"]
        figures["quota_bound_claims_per_s"] = round(args.vendor_qps / per_claim, 1)
    return figures


def stacks(
    work: Path, modes: tuple[str, ...], qps: int
) -> Iterator[tuple[str, str, AbstractContextManager[Any]]]:
    """The generic stack first (the reference), then each vendor in each of `modes`."""
    names = ["generic", *(f"{vendor}-{mode}" for mode in modes for vendor in ("dingtalk", "wecom"))]
    for name in names:
        directory = work / name
        directory.mkdir()
        url = f"sqlite:///{directory / 'hub.db'}"
        if name == "generic":
            yield name, url, stack(directory, url, auto_decide=True)
            continue
        vendor, mode = name.split("-", 1)
        start = dingtalk_stack if vendor == "dingtalk" else wecom_stack
        sim_args = (*VENDOR_RETRY, "--qps", str(qps))  # the app's quota, and finoa paced at it
        quota = {"rate_limit_per_second": qps}
        yield name, url, start(directory, url, approvals=mode, sim_args=sim_args, config=quota)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=100, help="claims per stack")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--callbacks", type=int, default=5000, help="callbacks per handler")
    parser.add_argument(
        "--approval",
        choices=("hub-led", "oa-led", "both"),
        default="both",
        help="how the vendors' stacks run their approvals (generic: always hub-led)",
    )
    parser.add_argument(
        "--vendor-qps",
        type=int,
        default=VENDOR_QPS,
        help="the simulated app's quota, calls a second (the vendors' default: 50)",
    )
    parser.add_argument("--skip-loop", action="store_true", help="only the handlers alone")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    results: dict[str, Any] = {"verify_per_callback": verify_cost(args.callbacks)}
    print(f"verify per callback: {results['verify_per_callback']}")
    if not args.skip_loop:
        work = Path(tempfile.mkdtemp(prefix="finoa-bench-callbacks-"))
        try:
            loop: dict[str, Any] = {}
            modes = ("hub-led", "oa-led") if args.approval == "both" else (args.approval,)
            for name, url, context in stacks(work, modes, args.vendor_qps):
                with context as running:
                    loop[name] = loop_figures(name, running, work / name, url, args)
                print(f"{name}: {loop[name]}")
            base = loop["generic"]
            for name in [n for n in loop if n != "generic"]:
                loop[f"{name}_over_generic"] = {
                    "end_to_end_claims_per_s": round(
                        loop[name]["end_to_end_claims_per_s"] / base["end_to_end_claims_per_s"], 2
                    ),
                    "hub_claims_per_cpu_second": round(
                        base["hub_cpu_ms_per_claim"] / loop[name]["hub_cpu_ms_per_claim"], 2
                    ),
                    "decision_to_written_back_p99": round(
                        loop[name]["decision_to_written_back_p99_ms"]
                        / base["decision_to_written_back_p99_ms"],
                        2,
                    ),
                }
            results["loop"] = loop
        finally:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
