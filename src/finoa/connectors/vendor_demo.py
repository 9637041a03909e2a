"""What the demo profiles of the vendor OA simulators (DingTalk, Feishu, WeCom, Weaver
e-cology) share: each vendor's `demo.py` states its connector, its title, whether its
simulator's callback retries can be sped up, and the instance config its credentials make.
"""

from __future__ import annotations

from typing import Any, ClassVar

from finoa.demo_stack import DemoContext, DemoProfile, approval_modes_of, sim_credentials


class VendorSimulatorDemo(DemoProfile):
    """A vendor OA's simulator in `finoa demo`: `finoa sim <connector>` on the run's port,
    its data under `<demo data dir>/<connector>`, its callbacks to the hub's webhook of the
    instance (named as the connector), its approvers refusing at the run's reject rate; the
    hub's default OA in the approval mode of the run, which the manifest allows."""

    # The simulator's `--retry-scale` in the demo (its callback retries sped up); None when
    # it has no such option.
    retry_scale: ClassVar[str | None] = "0.05"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.instance_name = cls.connector
        cls.approval_modes = approval_modes_of(cls.connector)

    def config(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        """The instance's `config:` for the simulator at `ctx.url` that accepts
        `credentials` (what its `--show-credentials` prints)."""
        raise NotImplementedError

    def webhook_url(self, ctx: DemoContext) -> str:
        """Where the simulator sends its callbacks: the hub's webhook of the instance."""
        return f"{ctx.hub_url}/api/v1/webhooks/{self.instance_name}"

    def _where(self, ctx: DemoContext) -> list[str]:
        return ["--data-dir", str(ctx.data_dir / self.connector)]

    def command(self, ctx: DemoContext) -> list[str]:
        retries = ["--retry-scale", self.retry_scale] if self.retry_scale is not None else []
        return ["sim", self.connector, "--port", str(ctx.port), *self._where(ctx),
                "--callback-url", self.webhook_url(ctx),
                "--reject-rate", str(ctx.reject_rate), *retries]  # fmt: skip

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        return sim_credentials(["sim", self.connector, *self._where(ctx)])

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "default": True,
            "approvals": {"expense_claim": ctx.approvals},
            "config": self.config(ctx, credentials),
        }
