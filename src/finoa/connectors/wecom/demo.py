"""The WeCom simulator in `finoa demo`: hub-led (each task its own WeCom approval with the
task's assignee as its only approver) or oa-led (the claim's approval runs in WeCom 审批);
either way the result comes back as an encrypted `sys_approval_change` callback."""

from __future__ import annotations

from typing import Any

from finoa.connectors.vendor_demo import VendorSimulatorDemo
from finoa.connectors.wecom.simulator import Credentials
from finoa.demo_stack import DemoContext, DemoProfile


class WeComDemo(VendorSimulatorDemo):
    connector = "wecom"
    title = "WeCom simulator"

    def config(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return Credentials.instance_config(credentials, ctx.url)


def demo_profile(connector: str) -> DemoProfile:
    return WeComDemo()
