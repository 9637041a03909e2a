"""The Feishu simulator in `finoa demo`: hub-led (each task an external approval instance in
the approver's Approval Center, decided by quick action) or oa-led (the claim's approval runs
in Feishu 审批); the result comes back as an encrypted event."""

from __future__ import annotations

from typing import Any

from finoa.connectors.vendor_demo import VendorSimulatorDemo
from finoa.demo_stack import DemoContext, DemoProfile


class FeishuDemo(VendorSimulatorDemo):
    connector = "feishu"
    title = "Feishu simulator"

    def config(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return simulator_config(ctx.url, credentials, callback_url=self.webhook_url(ctx))


def simulator_config(url: str, credentials: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """A `feishu` instance config for the simulator at `url`, from the credentials it shows
    (the developer console's names)."""
    c = credentials
    return {"app_id": c["app_id"], "app_secret": c["app_secret"],
            "verification_token": c["verification_token"], "encrypt_key": c["encrypt_key"],
            "approval_code": c["approval_code"],
            "external_approval_code": c["external_approval_code"],
            "base_url": url, **overrides}  # fmt: skip


def demo_profile(connector: str) -> DemoProfile:
    return FeishuDemo()
