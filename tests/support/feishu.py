"""The Feishu simulator as a real process (`finoa sim feishu`), and configs for it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from finoa.connectors.feishu.demo import simulator_config
from support.vendor_oa import VendorSim, VendorStack, message, start_sim, vendor_stack

__all__ = ["FeishuSim", "FeishuStack", "feishu_stack", "message"]


@dataclass
class FeishuSim(VendorSim):
    vendor = "feishu"

    def config(self, **extra: Any) -> dict[str, Any]:
        """A `feishu` instance config pointed at this simulator."""
        return simulator_config(self.url, self.credentials, **{"timeout_seconds": 5, **extra})


def start_feishu(data_dir: Path, *args: str) -> FeishuSim:
    return start_sim(FeishuSim, data_dir, *args)


def employee_form(category: str, amount: float, title: str = "打车 客户拜访") -> list[Any]:
    """The expense form as an employee fills it in Feishu: one fieldList row."""
    row = [
        {"id": "category", "type": "radioV2", "value": category},
        {"id": "amount", "type": "amount", "value": amount, "currency": "CNY"},
        {"id": "date", "type": "date", "value": "2026-11-20T00:00:00+08:00"},
    ]
    return [
        {"id": "reason", "type": "input", "value": title},
        {"id": "total", "type": "amount", "value": amount, "currency": "CNY"},
        {"id": "details", "type": "fieldList", "value": [row]},
    ]


class FeishuStack(VendorStack):
    """The hub on a Feishu instance, the Feishu simulator and the ERP simulator."""

    @property
    def feishu(self) -> FeishuSim:
        return cast(FeishuSim, self.sim)


@contextmanager
def feishu_stack(
    data_dir: Path, database_url: str, *, approvals: str, sim_args: tuple[str, ...] = ()
) -> Iterator[FeishuStack]:
    """Hub + Feishu simulator + ERP simulator, each a real process; the Feishu instance
    `feishu` runs expense claims `approvals` (oa-led or hub-led)."""
    with vendor_stack(
        FeishuStack, FeishuSim, data_dir, database_url, approvals=approvals,
        retry_scale="0.01", sim_args=sim_args,
    ) as stack:  # fmt: skip
        yield stack


def form_values(instance: dict[str, Any]) -> dict[str, Any]:
    """An instance's widgets by id (its `form` JSON string read)."""
    return {w["id"]: w["value"] for w in json.loads(instance["form"])}
