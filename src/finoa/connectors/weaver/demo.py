"""The Weaver e-cology simulator in `finoa demo`: hub-led (each approval task a unified todo,
统一待办) or oa-led (the claim an expense request running e-cology's own workflow); either
way the simulated approvers decide and e-cology tells the hub by signed callback."""

from __future__ import annotations

from typing import Any

from finoa.connectors.vendor_demo import VendorSimulatorDemo
from finoa.demo_stack import DemoContext, DemoProfile

HUB_USER_ID = "1"  # the user finoa acts as in the simulator's HRM (E0001)


class WeaverDemo(VendorSimulatorDemo):
    connector = "weaver"
    title = "Weaver e-cology simulator"
    retry_scale = None  # e-cology's simulator has no --retry-scale

    def config(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return simulator_config(ctx.url, credentials, hub_url=ctx.hub_url)


def simulator_config(url: str, credentials: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A `weaver` instance config for the simulator at `url` that accepts `credentials`."""
    c = credentials
    notices = {"message_code": c["message_code"]} if c.get("message_code") else {}
    return {"base_url": url, "appid": c["appid"], "secret": c["secret"], "spk": c["spk"],
            "user_id": HUB_USER_ID, "syscode": c["syscode"],
            "callback_secret": c["callback_secret"], **notices, **overrides}  # fmt: skip


def demo_profile(connector: str) -> DemoProfile:
    return WeaverDemo()
