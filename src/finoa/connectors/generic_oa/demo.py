"""The generic OA simulator in `finoa demo`: approvers decide todos and sign webhooks; half
the claims are submitted through it as an employee would."""

from __future__ import annotations

from typing import Any

import httpx

from finoa.connectors.instances import DEFAULT_OA
from finoa.demo_stack import DemoContext, DemoProfile


class GenericOADemo(DemoProfile):
    connector = "generic-oa"
    title = "OA simulator"
    instance_name = DEFAULT_OA

    def command(self, ctx: DemoContext) -> list[str]:
        return ["sim", "oa", "--port", str(ctx.port), "--hub-url", ctx.hub_url,
                "--reject-rate", str(ctx.reject_rate)]  # fmt: skip

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "config": {
                "base_url": ctx.url,
                "api_key": ctx.secrets["oa_api_key"],
                "webhook_secret": ctx.secrets["oa_webhook_secret"],
            },
        }

    async def submit(
        self, client: httpx.AsyncClient, ctx: DemoContext, body: dict[str, Any]
    ) -> tuple[int, Any, bool] | None:
        relay = (await client.post(f"{ctx.url}/_sim/claims", json=body)).json()
        status, answer = relay.get("status_code", 0), relay.get("body") or {}
        return status, answer, bool(isinstance(answer, dict) and answer.get("duplicate"))


def demo_profile(connector: str) -> DemoProfile:
    return GenericOADemo()
