"""The Yonyou simulators in `finoa demo`: U8 (OpenAPI) for `yonyou-u8`, NC / NCC
(ufinterface XML) for `yonyou-nc`."""

from __future__ import annotations

from typing import Any

from finoa.demo_stack import DemoContext, DemoProfile, sim_credentials, sim_stats


class YonyouDemo(DemoProfile):
    def __init__(self, connector: str) -> None:
        self.connector = connector
        self.profile = connector.removeprefix("yonyou-")  # u8 / nc
        self.title = f"Yonyou {self.profile.upper()} simulator"
        self.instance_name = connector

    def _where(self, ctx: DemoContext) -> list[str]:
        return ["--profile", self.profile, "--data-dir", str(ctx.data_dir / self.connector)]

    def command(self, ctx: DemoContext) -> list[str]:
        return ["sim", "yonyou", "--port", str(ctx.port), *self._where(ctx)]

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        return sim_credentials(["sim", "yonyou", *self._where(ctx)])

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return {"connector": self.connector, "config": {"base_url": ctx.url, **credentials}}

    def vouchers(self, ctx: DemoContext, credentials: dict[str, Any]) -> int:
        return int(sim_stats(ctx.url)["vouchers"])


def demo_profile(connector: str) -> DemoProfile:
    return YonyouDemo(connector)
