"""`finoa demo --oa … --erp … --approval …` as a user runs it: every ERP with the generic OA,
every OA in each approval mode it supports with the generic ERP, and one vendor × vendor
pair; each run's hub, OA and ERP are real processes (Tryton a real trytond the demo makes
under its data dir), and the vouchers in the table are counted in the ERP itself. A
combination the demo cannot run is one `error:` line and one `fix:` line, exit 2, nothing
created."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from support.cli import finoa

from finoa.demo_stack import demo_names, demo_profile

ERPS = ("generic", "tryton", "kingdee", "yonyou-u8", "yonyou-nc", "sap")
OAS = ("generic", "dingtalk", "feishu", "weaver", "wecom")
OK = "every valid claim reached a final state exactly once"


def _runs() -> list[tuple[str, str, str]]:
    runs = [("generic", erp, "hub-led") for erp in ERPS]
    runs += [
        (oa, "generic", mode)
        for oa in OAS
        for mode in demo_profile("oa", oa).approval_modes
        if (oa, mode) != ("generic", "hub-led")  # the first run above
    ]
    pairs = [("dingtalk", "kingdee", "oa-led"), ("wecom", "kingdee", "hub-led"),
             ("feishu", "sap", "oa-led")]  # fmt: skip
    return [*runs, *pairs]


def count(output: str, row: str) -> int:
    match = re.search(rf"│ {re.escape(row)}\s*│\s*(\d+) │", output)
    assert match, (row, output)
    return int(match.group(1))


RUNS = _runs()


@pytest.mark.parametrize(("oa", "erp", "approvals"), RUNS, ids=["-".join(r) for r in RUNS])
def test_the_demo_completes_the_loop_with(
    tmp_path: Path, oa: str, erp: str, approvals: str
) -> None:
    result = finoa(
        "demo", "--exit", "--claims", "20", "--port", "0", "--oa", oa, "--erp", erp,
        "--approval", approvals, "--data-dir", str(tmp_path / "demo"),
        data_dir=tmp_path / "data", timeout=240,
    )  # fmt: skip
    out = result.stdout
    assert result.returncode == 0, out[-6000:] + result.stderr[-3000:]
    assert OK in out and "intact" in out
    profiles = demo_profile("oa", oa), demo_profile("erp", erp)
    assert f"{profiles[0].title} ({approvals}) × {profiles[1].title}" in out
    accepted, posted = count(out, "received (accepted)"), count(out, "posted to the ERP")
    assert accepted >= 15 and posted > 0
    assert count(out, "vouchers in the ERP") == posted  # counted in the ERP: no loss, no doubles
    assert posted + count(out, "rejected by approvers") == accepted
    assert count(out, "written back (final status in OA)") == accepted
    assert count(out, "dead letters") == 0
    config = tmp_path / "demo" / "finoa.yaml"
    if (oa, erp) == ("generic", "generic"):
        assert not config.exists()  # the embedded default pair, as before
    else:  # the two instances it ran, and serving the data again uses them
        connectors = yaml.safe_load(config.read_text(encoding="utf-8"))["connectors"]
        assert {c["connector"] for c in connectors.values()} == {
            profiles[0].connector,
            profiles[1].connector,
        }
        assert f"FINOA_CONFIG={config} " in out


def test_every_system_has_a_profile_and_the_oa_modes_follow_the_manifests() -> None:
    assert demo_names("erp") == list(ERPS[:1]) + sorted(ERPS[1:])
    assert demo_names("oa") == list(OAS[:1]) + sorted(OAS[1:])
    assert demo_profile("oa", "dingtalk").approval_modes == ("hub-led", "oa-led")
    assert demo_profile("oa", "weaver").approval_modes == ("hub-led", "oa-led")


@pytest.mark.parametrize(
    ("args", "problem", "fix"),
    [
        (("--approval", "oa-led"), "--approval oa-led: the generic OA does not run approvals",
         "use --approval hub-led, or an OA that supports oa-led: dingtalk, feishu, weaver, wecom"),
        (("--oa", "kingdee"), "--oa kingdee: not an OA the demo knows",
         "give one of: generic, dingtalk, feishu, weaver, wecom"),
        (("--erp", "oracle"), "--erp oracle: not an ERP the demo knows",
         "give one of: generic, kingdee, sap, tryton, yonyou-nc, yonyou-u8"),
        (("--approval", "sometimes"), "--approval sometimes: not a mode",
         "give one of hub-led, oa-led"),
    ],
)  # fmt: skip
def test_a_combination_the_demo_cannot_run_is_one_error_and_one_fix(
    tmp_path: Path, args: tuple[str, ...], problem: str, fix: str
) -> None:
    where = tmp_path / "demo"
    result = finoa("demo", "--exit", "--port", "0", "--data-dir", str(where), *args,
                   data_dir=tmp_path / "data")  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: {problem}"), lines
    assert lines[1].startswith(f"fix: {fix}"), lines
    assert not where.exists()  # nothing was started or written
