"""The SAP gateway simulator (BAPI_ACC_DOCUMENT_POST over HTTP) in `finoa demo`."""

from __future__ import annotations

from typing import Any

from finoa.demo_stack import DemoContext, DemoProfile, sim_credentials, sim_stats


class SAPDemo(DemoProfile):
    connector = "sap"
    title = "SAP gateway simulator"
    instance_name = "sap"

    def _where(self, ctx: DemoContext) -> list[str]:
        return ["--data-dir", str(ctx.data_dir / "sap")]

    def command(self, ctx: DemoContext) -> list[str]:
        return ["sim", "sap", "--port", str(ctx.port), *self._where(ctx)]

    def credentials(self, ctx: DemoContext) -> dict[str, Any]:
        return sim_credentials(["sim", "sap", *self._where(ctx)])

    def instance(self, ctx: DemoContext, credentials: dict[str, Any]) -> dict[str, Any]:
        return {"connector": self.connector, "config": simulator_config(ctx.url, credentials)}

    def vouchers(self, ctx: DemoContext, credentials: dict[str, Any]) -> int:
        return int(sim_stats(ctx.url)["documents"])


def simulator_config(url: str, credentials: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The `sap` connector's config for the simulator at `url` (its gateway root `/api`)."""
    return {
        "base_url": f"{url}/api",
        "username": credentials["username"],
        "password": credentials["password"],
        "company_code": credentials["company_code"],
        "sap_client": "100",
        **overrides,
    }


def demo_profile(connector: str) -> DemoProfile:
    return SAPDemo()
