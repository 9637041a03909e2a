"""The DingTalk simulator in `finoa demo`: hub-led (todos whose 同意 button the simulated
approvers press) or oa-led (the approval runs in DingTalk's 审批 and its result comes back as
an encrypted callback)."""

from __future__ import annotations

from typing import Any

from finoa.connectors.vendor_demo import VendorSimulatorDemo
from finoa.demo_stack import DemoContext, DemoProfile


class DingTalkDemo(VendorSimulatorDemo):
    connector = "dingtalk"
    title = "DingTalk simulator"

    def config(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return simulator_config(ctx.url, credentials, callback_url=self.webhook_url(ctx))


def simulator_config(url: str, credentials: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A `dingtalk` instance config for the simulator at `url`, from the credentials it
    shows (console names); its calls paced at the simulator's default quota."""
    from finoa.connectors.vendor_sim import DEFAULT_QPS

    c = credentials
    return {"app_key": c["appKey"], "app_secret": c["appSecret"], "token": c["token"],
            "aes_key": c["aesKey"], "process_code": c["processCode"], "agent_id": c["agentId"],
            "api_base_url": url, "oapi_base_url": url, "rate_limit_per_second": DEFAULT_QPS,
            **overrides}  # fmt: skip


def demo_profile(connector: str) -> DemoProfile:
    return DingTalkDemo()
