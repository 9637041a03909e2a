"""The DingTalk simulator in `finoa demo`: hub-led (todos whose 同意 button the simulated
approvers press) or oa-led (the approval runs in DingTalk's 审批 and its result comes back as
an encrypted callback)."""

from __future__ import annotations

from typing import Any

from finoa.demo_stack import DemoContext, DemoProfile, approval_modes_of, sim_credentials


class DingTalkDemo(DemoProfile):
    connector = "dingtalk"
    title = "DingTalk simulator"
    instance_name = "dingtalk"
    approval_modes = approval_modes_of("dingtalk")

    def _where(self, ctx: DemoContext) -> list[str]:
        return ["--data-dir", str(ctx.data_dir / "dingtalk")]

    def command(self, ctx: DemoContext) -> list[str]:
        return ["sim", "dingtalk", "--port", str(ctx.port), *self._where(ctx),
                "--callback-url", f"{ctx.hub_url}/api/v1/webhooks/dingtalk",
                "--reject-rate", str(ctx.reject_rate), "--retry-scale", "0.05"]  # fmt: skip

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        return sim_credentials(["sim", "dingtalk", *self._where(ctx)])

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "default": True,
            "approvals": {"expense_claim": ctx.approvals},
            "config": simulator_config(
                ctx.url, credentials, callback_url=f"{ctx.hub_url}/api/v1/webhooks/dingtalk"
            ),
        }


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
