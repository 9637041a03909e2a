"""A real Tryton in `finoa demo`: a site made under the demo's data dir by
`finoa erp tryton init` (SQLite backend), served by `finoa erp tryton serve`; the vouchers
that arrived are counted as finoa's moves in Tryton."""

from __future__ import annotations

import asyncio
import importlib.util
from datetime import date, timedelta
from typing import Any

import httpx

from finoa.connectors.tryton.rpc import TrytonRPC
from finoa.connectors.tryton.setup import TrytonSite
from finoa.demo_stack import DemoContext, DemoProfile, DemoProfileError

MOVE_DESCRIPTION = "finoa:%"  # finoa's moves carry their reference as `finoa:…`


class TrytonDemo(DemoProfile):
    connector = "tryton"
    title = "Tryton (trytond)"
    instance_name = "tryton"
    ready_path = "/"

    def _site_dir(self, ctx: DemoContext) -> str:
        return str(ctx.data_dir / "tryton")

    def prepare(self, ctx: DemoContext) -> None:
        if importlib.util.find_spec("trytond") is None:
            raise DemoProfileError(
                "--erp tryton: trytond is not installed", "pip install 'finoa[tryton]'"
            )
        today = date.today()
        # the fiscal years of the claims' expense dates (up to 30 days back) and of today
        years = sorted({(today - timedelta(days=31)).year, today.year})
        ctx.finoa("erp", "tryton", "init", "--dir", self._site_dir(ctx), "--port",
                  str(ctx.port), *(a for y in years for a in ("--year", str(y))))  # fmt: skip

    def command(self, ctx: DemoContext) -> list[str]:
        return ["erp", "tryton", "serve", "--dir", self._site_dir(ctx)]

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        site = TrytonSite.load(ctx.data_dir / "tryton")
        return {"database": site.database, "login": site.login,
                "password_file": str(site.password_file), "password": site.password}  # fmt: skip

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        c = credentials
        return {
            "connector": self.connector,
            "config": {"base_url": ctx.url, "database": c["database"], "login": c["login"],
                       "password_file": c["password_file"]},
        }  # fmt: skip

    def vouchers(self, ctx: DemoContext, credentials: dict[str, Any]) -> int:
        return asyncio.run(count_moves(ctx.url, credentials))


async def count_moves(base_url: str, credentials: dict[str, Any]) -> int:
    """How many of finoa's moves the Tryton database holds (over JSON-RPC, as finoa's user)."""
    async with httpx.AsyncClient() as http:
        rpc = TrytonRPC(http, base_url, credentials["database"], credentials["login"],
                        credentials["password"])  # fmt: skip
        try:
            count = await rpc.call(
                "model.account.move.search_count", [("description", "like", MOVE_DESCRIPTION)]
            )
        finally:
            await rpc.logout()
    return int(count)


def demo_profile(connector: str) -> DemoProfile:
    return TrytonDemo()
