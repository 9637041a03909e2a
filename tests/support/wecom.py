"""The WeCom simulator as a real process (`finoa sim wecom`), and configs for it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from finoa.connectors.wecom.simulator import Credentials
from support.vendor_oa import CLAIM, TODO, VendorSim, VendorStack, message, start_sim, vendor_stack

__all__ = ["CLAIM", "TODO", "WeComSim", "WeComStack", "message", "wecom_stack"]


@dataclass
class WeComSim(VendorSim):
    vendor = "wecom"
    takes_callback_url = False  # the URL is saved in WeCom's admin console, not in finoa

    def config(self, **extra: Any) -> dict[str, Any]:
        """A `wecom` instance config pointed at this simulator."""
        return {
            **Credentials.instance_config(self.credentials, self.url),
            "timeout_seconds": 5,
            **extra,
        }


def start_wecom(data_dir: Path, *args: str) -> WeComSim:
    return start_sim(WeComSim, data_dir, *args)


class WeComStack(VendorStack):
    """The hub on a WeCom instance, the WeCom simulator and the ERP simulator."""

    @property
    def wecom(self) -> WeComSim:
        return cast(WeComSim, self.sim)


@contextmanager
def wecom_stack(
    data_dir: Path,
    database_url: str,
    *,
    approvals: str,
    sim_args: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
) -> Iterator[WeComStack]:
    """Hub + WeCom simulator + ERP simulator, each a real process; the WeCom instance
    `wecom` runs expense claims `approvals` (oa-led or hub-led), `config` added to its
    config."""
    with vendor_stack(
        WeComStack, WeComSim, data_dir, database_url, approvals=approvals,
        retry_scale="0.05", sim_args=sim_args, config=config,
    ) as stack:  # fmt: skip
        yield stack


def employee_approval(
    userid: str, category: str, amount: str, title: str = "打车 客户拜访"
) -> dict[str, Any]:
    """The expense template as an employee fills it in WeCom: one table row."""
    from finoa.connectors.wecom.mapping import day_timestamp

    row = [
        {
            "control": "Selector",
            "id": "Selector-1009",
            "value": {"selector": {"type": "single", "options": [{"key": category}]}},
        },
        {"control": "Money", "id": "Money-1010", "value": {"new_money": amount}},
        {
            "control": "Date",
            "id": "Date-1012",
            "value": {"date": {"type": "day", "s_timestamp": day_timestamp("2026-11-20")}},
        },
    ]
    return {
        "creator_userid": userid,
        "apply_data": {
            "contents": [
                {"control": "Text", "id": "Text-1001", "value": {"text": title}},
                {"control": "Table", "id": "Table-1008", "value": {"children": [{"list": row}]}},
            ]
        },
    }
