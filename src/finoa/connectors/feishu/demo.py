"""The Feishu simulator in `finoa demo`: hub-led (each task an external approval instance in
the approver's Approval Center, decided by quick action) or oa-led (the claim's approval runs
in Feishu 审批); the result comes back as an encrypted event."""

from __future__ import annotations

from typing import Any

from finoa.demo_stack import DemoContext, DemoProfile, approval_modes_of, sim_credentials


class FeishuDemo(DemoProfile):
    connector = "feishu"
    title = "Feishu simulator"
    instance_name = "feishu"
    approval_modes = approval_modes_of("feishu")

    def _where(self, ctx: DemoContext) -> list[str]:
        return ["--data-dir", str(ctx.data_dir / "feishu")]

    def command(self, ctx: DemoContext) -> list[str]:
        return ["sim", "feishu", "--port", str(ctx.port), *self._where(ctx),
                "--callback-url", f"{ctx.hub_url}/api/v1/webhooks/feishu",
                "--reject-rate", str(ctx.reject_rate), "--retry-scale", "0.05"]  # fmt: skip

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        return sim_credentials(["sim", "feishu", *self._where(ctx)])

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "default": True,
            "approvals": {"expense_claim": ctx.approvals},
            "config": simulator_config(
                ctx.url, credentials, callback_url=f"{ctx.hub_url}/api/v1/webhooks/feishu"
            ),
        }


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
