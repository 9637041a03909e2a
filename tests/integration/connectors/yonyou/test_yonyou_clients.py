"""The Yonyou connectors against their simulators running as real processes: U8's token
(and a fresh one after expiry), voucher/add under a tradeid (a repeat yields the first
voucher), the posted-lookup by reserve2, NC's ufinterface import in UTF-8 and GBK and its
lookup, base data refused naming the code, and each vendor's error shapes classed for the
retry table."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.processes import Server, wait_for
from support.yonyou import yonyou_config, yonyou_simulator

from finoa.connectors.base import OutboundMessage
from finoa.connectors.yonyou.client import YonyouNCConnector, YonyouU8Connector
from finoa.messaging.retry import ErrorClass

Sim = tuple[Server, dict[str, str]]

VOUCHER: dict[str, Any] = {
    "voucher_id": "V1", "claim_id": "CL1", "hub_voucher_no": "记-0001", "word": "记",
    "period": "2025-11", "date": "2025-11-03", "summary": "报销 差旅", "currency": "CNY",
    "reversal_of": None,
    "entries": [
        {"line": 1, "account_code": "6602.01", "summary": "差旅费", "debit_fen": 128050,
         "credit_fen": 0, "aux": {"department": "D02", "employee": "E0011", "project": "P001"}},
        {"line": 2, "account_code": "2241", "summary": "应付 周杰", "debit_fen": 0,
         "credit_fen": 128050, "aux": {"department": None, "employee": "E0011",
                                       "project": None}},
    ],
}  # fmt: skip


def message(key: str, payload: dict[str, Any] | None = None, action: str = "voucher.post") -> Any:
    return OutboundMessage(1, action, "V1", key, payload or VOUCHER)


def with_account(code: str) -> dict[str, Any]:
    entries = [dict(VOUCHER["entries"][0], account_code=code), VOUCHER["entries"][1]]
    return {**VOUCHER, "entries": entries}


def mapped_onto(profile: str, account: str) -> dict[str, Any]:
    """An inline `mappings:` override sending 6602.01 to the account set's `account`."""
    name = f"yonyou-{profile}/voucher"
    accounts = {"6602.01": account, "2241": "2241"}
    spec = {"mapping": name, "version": 2, "code_tables": {"accounts": {"values": accounts}},
            "fields": {}}  # fmt: skip
    return {"mappings": {name: spec}}


def get(server: Server, path: str) -> Any:
    return httpx.get(server.url + path).json()


@pytest.fixture(scope="module")
def u8(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with yonyou_simulator(tmp_path_factory.mktemp("u8"), "u8", token_ttl=2) as running:
        yield running


@pytest.fixture(scope="module")
def nc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with yonyou_simulator(tmp_path_factory.mktemp("nc"), "nc") as running:
        yield running


async def with_u8(sim: Sim, work: Any, **overrides: Any) -> Any:
    server, credentials = sim
    async with httpx.AsyncClient() as http:
        # margin 0: the cached token is used right up to its expiry, so U8 refuses it
        config = yonyou_config("u8", server.url, credentials, **overrides)
        connector = YonyouU8Connector(config, http, refresh_margin_seconds=0.0)
        return await work(connector)


async def with_nc(sim: Sim, work: Any, **overrides: Any) -> Any:
    server, credentials = sim
    async with httpx.AsyncClient() as http:
        connector = YonyouNCConnector(
            yonyou_config("nc", server.url, credentials, **overrides), http
        )
        return await work(connector)


def vouchers_with(server: Server, key: str) -> list[dict[str, Any]]:
    return [v for v in get(server, "/_sim/vouchers") if v["reference"] == key]


def test_u8_repeated_tradeid_yields_the_first_voucher_and_lookup_finds_it(u8: Sim) -> None:
    server, _ = u8
    key = f"finoa-voucher-{time.time_ns()}"

    async def work(c: YonyouU8Connector) -> Any:
        missing = await c.lookup([message(key)])
        first = await c.deliver([message(key)])
        again = await c.deliver([message(key)])
        found = await c.lookup([message(key)])
        return missing, first, again, found

    before = get(server, "/_sim/stats")["duplicates"]
    missing, (first,), (again,), (found,) = asyncio.run(with_u8(u8, work))
    assert missing == [None]
    assert first.ok and first.response["erp_voucher_no"].startswith("2025-11-记-")
    assert again.response["erp_voucher_no"] == first.response["erp_voucher_no"]
    assert (
        found is not None and found.response["erp_voucher_no"] == first.response["erp_voucher_no"]
    )
    assert len(vouchers_with(server, key)) == 1
    assert get(server, "/_sim/stats")["duplicates"] == before + 1


def test_u8_expired_token_is_replaced_and_the_call_sent_once_more(u8: Sim) -> None:
    server, _ = u8
    keys = [f"finoa-voucher-{time.time_ns()}-{i}" for i in range(2)]

    async def work(c: YonyouU8Connector) -> Any:
        (first,) = await c.deliver([message(keys[0])])
        token = c.tokens._token
        assert token is not None
        # wait on U8's clock until the 2-second token has expired there
        await asyncio.to_thread(
            wait_for,
            lambda: (
                httpx.get(
                    f"{server.url}/api/voucher/batch_get",
                    params={**c_params(c), "token": token.value, "reserve2": "x"},
                ).json()["errcode"]
                == "20002"
            ),
            10,
            "U8 to expire the token",
        )
        (second,) = await c.deliver([message(keys[1])])
        return first, second, c.tokens.fetches

    first, second, fetches = asyncio.run(with_u8(u8, work))
    assert first.ok and second.ok, (first, second)
    assert fetches == 2
    assert all(len(vouchers_with(server, k)) == 1 for k in keys)


def c_params(c: YonyouU8Connector) -> dict[str, str]:
    assert c.config is not None
    f = c.config.fields
    return {k: f[k] for k in ("from_account", "to_account", "app_key")}


def test_u8_posts_in_the_account_sets_codes_by_the_shipped_mapping(u8: Sim) -> None:
    server, _ = u8
    key = f"finoa-voucher-{time.time_ns()}"
    (result,) = asyncio.run(with_u8(u8, lambda c: c.deliver([message(key)])))
    assert result.ok, result.error
    (posted,) = vouchers_with(server, key)
    lines = posted["body"]["voucher"]["debit"]["entry"]
    assert (lines[0]["account_code"], lines[0]["dept_id"]) == ("660201", "03")


def test_an_unmapped_account_is_refused_in_finoa_naming_it_and_nothing_is_sent(
    u8: Sim, nc: Sim
) -> None:
    for sim, run, erp in ((u8, with_u8, "U8 account set"), (nc, with_nc, "NC account")):
        server, _ = sim
        key = f"finoa-voucher-{time.time_ns()}"
        before = get(server, "/_sim/stats")["requests"]
        unmapped = message(key, with_account("6602.99"))
        (result,) = asyncio.run(run(sim, lambda c, m=unmapped: c.deliver([m])))
        assert result.error is not None and result.error.error_class is ErrorClass.PERMANENT
        assert result.error.reason.startswith(f"refused before posting to {erp} ")
        assert "entries[0].account_code: account 6602.99 has no mapping in yonyou-" in (
            result.error.reason
        )
        assert get(server, "/_sim/stats")["requests"] == before and vouchers_with(server, key) == []


def test_u8_refuses_unknown_base_data_naming_the_code_as_permanent(u8: Sim) -> None:
    server, _ = u8
    key = f"finoa-voucher-{time.time_ns()}"

    async def work(c: YonyouU8Connector) -> Any:
        return await c.deliver([message(key)])

    # a mapping onto an account the account set does not have: U8 itself refuses it
    (result,) = asyncio.run(with_u8(u8, work, **mapped_onto("u8", "660299")))
    assert result.error is not None
    assert result.error.error_class is ErrorClass.PERMANENT
    assert "40004" in result.error.reason and "'660299' does not exist" in result.error.reason
    assert vouchers_with(server, key) == []


def test_u8_wrong_secret_is_a_config_error_and_health_says_why(u8: Sim) -> None:
    async def work(c: YonyouU8Connector) -> Any:
        return await c.deliver([message("k")]), await c.health()

    (result,), health = asyncio.run(with_u8(u8, work, app_secret="wrong"))
    assert result.error is not None and result.error.error_class is ErrorClass.CONFIG
    assert "20001" in result.error.reason
    assert not health.ok and "20001" in health.detail
    good = asyncio.run(with_u8(u8, lambda c: c.health()))
    assert good.ok, good.detail


def test_u8_injected_errors_are_transient_and_lost_answers_unknown(u8: Sim) -> None:
    server, _ = u8
    key = f"finoa-voucher-{time.time_ns()}"
    httpx.post(f"{server.url}/_sim/faults", json={"error_rate": 1, "count": 1}).raise_for_status()

    async def work(c: YonyouU8Connector) -> Any:
        (refused,) = await c.deliver([message(key)])
        await asyncio.to_thread(
            httpx.post, f"{server.url}/_sim/faults", json={"drop_rate": 1, "count": 1}
        )
        (lost,) = await c.deliver([message(key)])
        (found,) = await c.lookup([message(key)])
        return refused, lost, found

    refused, lost, found = asyncio.run(with_u8(u8, work, timeout_seconds=1))
    assert refused.error is not None and refused.error.error_class is ErrorClass.TRANSIENT
    assert not refused.error.outcome_unknown  # 503: U8 never took it
    assert lost.error is not None and lost.error.outcome_unknown
    assert found is not None and found.ok  # the voucher was made though the answer was lost
    assert len(vouchers_with(server, key)) == 1


@pytest.mark.parametrize("encoding", ["UTF-8", "GBK"])
def test_nc_import_makes_one_voucher_and_lookup_finds_it(nc: Sim, encoding: str) -> None:
    server, _ = nc
    key = f"finoa-voucher-{time.time_ns()}"

    async def work(c: YonyouNCConnector) -> Any:
        missing = await c.lookup([message(key)])
        (posted,) = await c.deliver([message(key)])
        (found,) = await c.lookup([message(key)])
        return missing, posted, found, await c.health()

    missing, posted, found, health = asyncio.run(with_nc(nc, work, encoding=encoding))
    assert missing == [None]
    assert posted.ok, posted.error
    assert posted.response["erp_voucher_no"].startswith("2025-11-记-")
    assert (
        found is not None and found.response["erp_voucher_no"] == posted.response["erp_voucher_no"]
    )
    assert health.ok, health.detail
    (stored,) = vouchers_with(server, key)
    assert f"encoding='{encoding}'" in stored["body"]
    assert "报销 差旅" in stored["body"]


def test_nc_keeps_no_idempotency_so_a_repeat_is_a_second_voucher_lookup_sees_both(
    nc: Sim,
) -> None:
    server, _ = nc
    key = f"finoa-voucher-{time.time_ns()}"

    async def work(c: YonyouNCConnector) -> Any:
        await c.deliver([message(key)])
        await c.deliver([message(key)])
        return await c.lookup([message(key)])

    (found,) = asyncio.run(with_nc(nc, work))
    assert len(vouchers_with(server, key)) == 2
    assert found is not None and found.error is not None
    assert found.error.error_class is ErrorClass.PERMANENT and "2 times" in found.error.reason


def test_nc_refusals_map_to_the_retry_table(nc: Sim) -> None:
    server, _ = nc
    key = f"finoa-voucher-{time.time_ns()}"

    async def work(c: YonyouNCConnector) -> Any:
        (unknown,) = await c.deliver([message(key)])
        return unknown

    unknown = asyncio.run(with_nc(nc, work, **mapped_onto("nc", "9999")))
    assert unknown.error is not None and unknown.error.error_class is ErrorClass.PERMANENT
    assert "-31" in unknown.error.reason and "'9999' does not exist" in unknown.error.reason

    async def stranger(c: YonyouNCConnector) -> Any:
        return await c.deliver([message(key)]), await c.health()

    (refused,), health = asyncio.run(with_nc(nc, stranger, sender="intruder"))
    assert refused.error is not None and refused.error.error_class is ErrorClass.CONFIG
    assert "未注册" in refused.error.reason and not health.ok
    (wrong_action,) = asyncio.run(
        with_nc(nc, lambda c: c.deliver([message(key, action="todo.push")]))
    )
    assert wrong_action.error is not None and wrong_action.error.error_class is ErrorClass.CONFIG
    assert vouchers_with(server, key) == []


def test_simulators_refuse_hostile_xml_and_bad_config_is_named(nc: Sim) -> None:
    server, credentials = nc
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e "boom">]><ufinterface>&e;</ufinterface>'
    answer = httpx.post(
        f"{server.url}/service/XChangeServlet",
        params={"account": credentials["account"], "groupcode": credentials["groupcode"]},
        content=bomb,
    )
    assert answer.status_code == 200 and b'successful="N"' in answer.content
    assert b"DOCTYPE" in answer.content
    with pytest.raises(ValueError, match="encoding: one of UTF-8, GBK, GB2312"):
        YonyouNCConnector.check_config(
            yonyou_config("nc", server.url, credentials, encoding="latin1")
        )
    with pytest.raises(ValueError, match="app_secret: required"):
        YonyouU8Connector.check_config(
            {"base_url": server.url, "app_key": "a", "from_account": "f", "to_account": "t"}
        )


def test_cli_names_a_bad_profile_and_shows_its_example(tmp_path: Path) -> None:
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "finoa", "sim", "yonyou", *args, "--data-dir", str(tmp_path)],
            capture_output=True, text=True,
        )  # fmt: skip

    bad = run("--profile", "k3")
    assert bad.returncode == 2
    assert "error: --profile: 'k3' is not a Yonyou profile" in bad.stderr
    assert "fix: give --profile u8" in bad.stderr
    short = run("--profile", "u8", "--token-ttl", "0")
    assert short.returncode == 2 and "--token-ttl: at least 1 second" in short.stderr
    assert not (tmp_path / "sim-yonyou-k3").exists()
    shown = run("--help")
    assert "Example: finoa sim yonyou --profile u8 --port 8706" in shown.stdout
    nc = run("--profile", "nc", "--show-credentials")
    assert nc.returncode == 0 and {"account", "groupcode", "sender"} <= set(json.loads(nc.stdout))


@pytest.mark.parametrize(
    ("profile", "code", "error_class"),
    [
        ("u8", "50000", ErrorClass.TRANSIENT),
        ("u8", "42900", ErrorClass.RATE_LIMITED),
        ("u8", "40001", ErrorClass.PERMANENT),
        ("u8", "77777", ErrorClass.PERMANENT),
        ("nc", "-5", ErrorClass.TRANSIENT),
        ("nc", "-32", ErrorClass.PERMANENT),
    ],
)
def test_vendor_error_shapes_are_classed_for_the_retry_table(
    u8: Sim, nc: Sim, profile: str, code: str, error_class: ErrorClass
) -> None:
    sim = u8 if profile == "u8" else nc
    server, _ = sim
    key = f"finoa-voucher-{time.time_ns()}"
    queued = httpx.post(
        f"{server.url}/_sim/vendor-errors", json={"code": code, "message": "系统繁忙", "count": 1}
    )
    assert queued.status_code == 200, queued.text

    async def work(c: Any) -> Any:
        (refused,) = await c.deliver([message(key)])
        (posted,) = await c.deliver([message(key)])
        return refused, posted

    refused, posted = asyncio.run((with_u8 if profile == "u8" else with_nc)(sim, work))
    assert refused.error is not None and refused.error.error_class is error_class
    assert code in refused.error.reason and "系统繁忙" in refused.error.reason
    assert posted.ok  # the queued answer was used up; nothing was made by the refused call
    assert len(vouchers_with(server, key)) == 1
