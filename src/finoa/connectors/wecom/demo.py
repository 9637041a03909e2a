"""The WeCom simulator in `finoa demo`: hub-led (each task its own WeCom approval with the
task's assignee as its only approver) or oa-led (the claim's approval runs in WeCom 审批);
either way the result comes back as an encrypted `sys_approval_change` callback."""

from __future__ import annotations

from typing import Any

from finoa.connectors.wecom.simulator import Credentials
from finoa.demo_stack import DemoContext, DemoProfile, approval_modes_of, sim_credentials


class WeComDemo(DemoProfile):
    connector = "wecom"
    title = "WeCom simulator"
    instance_name = "wecom"
    approval_modes = approval_modes_of("wecom")

    def _where(self, ctx: DemoContext) -> list[str]:
        return ["--data-dir", str(ctx.data_dir / "wecom")]

    def command(self, ctx: DemoContext) -> list[str]:
        return ["sim", "wecom", "--port", str(ctx.port), *self._where(ctx),
                "--callback-url", f"{ctx.hub_url}/api/v1/webhooks/wecom",
                "--reject-rate", str(ctx.reject_rate), "--retry-scale", "0.05"]  # fmt: skip

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        return sim_credentials(["sim", "wecom", *self._where(ctx)])

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "default": True,
            "approvals": {"expense_claim": ctx.approvals},
            "config": Credentials.instance_config(credentials, ctx.url),
        }


def demo_profile(connector: str) -> DemoProfile:
    return WeComDemo()
