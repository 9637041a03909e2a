"""The K/3 Cloud simulator in `finoa demo`."""

from __future__ import annotations

from typing import Any

from finoa.demo_stack import DemoContext, DemoProfile, sim_credentials, sim_stats


class KingdeeDemo(DemoProfile):
    connector = "kingdee"
    title = "Kingdee K/3 Cloud simulator"
    instance_name = "kingdee"

    def _args(self, ctx: DemoContext) -> list[str]:
        return ["sim", "kingdee", "--port", str(ctx.port),
                "--data-dir", str(ctx.data_dir / "kingdee")]  # fmt: skip

    def command(self, ctx: DemoContext) -> list[str]:
        return self._args(ctx)

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        return sim_credentials(self._args(ctx))

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        c = credentials
        return {
            "connector": self.connector,
            "config": {
                "server_url": c["server_url"], "acct_id": c["acct_id"],
                "user_name": c["user_name"], "auth": "app_secret", "lcid": c["lcid"],
                "app_id": c["app_id"], "app_secret": c["app_secret"],
            },
        }  # fmt: skip

    def vouchers(self, ctx: DemoContext, credentials: dict[str, Any]) -> int:
        return int(sim_stats(ctx.url)["vouchers"])


def demo_profile(connector: str) -> DemoProfile:
    return KingdeeDemo()
