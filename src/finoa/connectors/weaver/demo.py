"""The Weaver e-cology simulator in `finoa demo`: hub-led (each approval task a unified todo,
统一待办) or oa-led (the claim an expense request running e-cology's own workflow); either
way the simulated approvers decide and e-cology tells the hub by signed callback."""

from __future__ import annotations

from typing import Any

from finoa.demo_stack import DemoContext, DemoProfile, approval_modes_of, sim_credentials

HUB_USER_ID = "1"  # the user finoa acts as in the simulator's HRM (E0001)


class WeaverDemo(DemoProfile):
    connector = "weaver"
    title = "Weaver e-cology simulator"
    instance_name = "weaver"
    approval_modes = approval_modes_of("weaver")

    def _where(self, ctx: DemoContext) -> list[str]:
        return ["--data-dir", str(ctx.data_dir / "weaver")]

    def command(self, ctx: DemoContext) -> list[str]:
        return ["sim", "weaver", "--port", str(ctx.port), *self._where(ctx),
                "--callback-url", f"{ctx.hub_url}/api/v1/webhooks/weaver",
                "--reject-rate", str(ctx.reject_rate)]  # fmt: skip

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        return sim_credentials(["sim", "weaver", *self._where(ctx)])

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        config = simulator_config(ctx.url, credentials, hub_url=ctx.hub_url)
        return {
            "connector": self.connector,
            "default": True,
            "approvals": {"expense_claim": ctx.approvals},
            "config": config,
        }


def simulator_config(url: str, credentials: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A `weaver` instance config for the simulator at `url` that accepts `credentials`."""
    c = credentials
    notices = {"message_code": c["message_code"]} if c.get("message_code") else {}
    return {"base_url": url, "appid": c["appid"], "secret": c["secret"], "spk": c["spk"],
            "user_id": HUB_USER_ID, "syscode": c["syscode"],
            "callback_secret": c["callback_secret"], **notices, **overrides}  # fmt: skip


def demo_profile(connector: str) -> DemoProfile:
    return WeaverDemo()
