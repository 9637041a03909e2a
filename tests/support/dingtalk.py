"""The DingTalk simulator as a real process (`finoa sim dingtalk`), and configs for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from finoa.connectors.dingtalk.demo import simulator_config
from support.vendor_oa import CLAIM, TODO, VendorSim, VendorStack, message, start_sim, vendor_stack

__all__ = ["CLAIM", "TODO", "DingTalkSim", "DingTalkStack", "dingtalk_stack", "message"]


@dataclass
class DingTalkSim(VendorSim):
    vendor = "dingtalk"

    def config(self, **extra: Any) -> dict[str, Any]:
        """A `dingtalk` instance config pointed at this simulator."""
        return simulator_config(self.url, self.credentials, **{"timeout_seconds": 5, **extra})


def start_dingtalk(data_dir: Path, *args: str) -> DingTalkSim:
    return start_sim(DingTalkSim, data_dir, *args)


class DingTalkStack(VendorStack):
    """The hub on a DingTalk instance, the DingTalk simulator and the ERP simulator."""

    @property
    def dingtalk(self) -> DingTalkSim:
        return cast(DingTalkSim, self.sim)


@contextmanager
def dingtalk_stack(
    data_dir: Path,
    database_url: str,
    *,
    approvals: str,
    sim_args: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
) -> Iterator[DingTalkStack]:
    """Hub + DingTalk simulator + ERP simulator, each a real process; the DingTalk instance
    `dingtalk` runs expense claims `approvals` (oa-led or hub-led), `config` added to its
    config."""
    with vendor_stack(
        DingTalkStack, DingTalkSim, data_dir, database_url, approvals=approvals,
        retry_scale="0.05", sim_args=sim_args, config=config,
    ) as stack:  # fmt: skip
        yield stack


def employee_form(category: str, amount: str, title: str = "打车 客户拜访") -> list[dict[str, str]]:
    """The expense form as an employee fills it in DingTalk: one table row."""
    import json

    rows = [
        [
            {"name": "费用类别", "value": category},
            {"name": "金额（元）", "value": amount},
            {"name": "费用日期", "value": "2026-11-20"},
        ]
    ]
    return [
        {"name": "报销事由", "value": title},
        {"name": "费用明细", "value": json.dumps(rows, ensure_ascii=False)},
    ]
