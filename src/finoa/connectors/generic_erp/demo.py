"""The generic ERP simulator in `finoa demo`."""

from __future__ import annotations

from typing import Any

from finoa.connectors.instances import DEFAULT_ERP
from finoa.demo_stack import DemoContext, DemoProfile, sim_stats


class GenericERPDemo(DemoProfile):
    connector = "generic-erp"
    title = "ERP simulator"
    instance_name = DEFAULT_ERP

    def command(self, ctx: DemoContext) -> list[str]:
        return ["sim", "erp", "--port", str(ctx.port)]

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "config": {"base_url": ctx.url, "api_key": ctx.secrets["erp_api_key"]},
        }

    def vouchers(self, ctx: DemoContext, credentials: dict[str, Any]) -> int:
        return int(sim_stats(ctx.url)["vouchers"])


def demo_profile(connector: str) -> DemoProfile:
    return GenericERPDemo()
