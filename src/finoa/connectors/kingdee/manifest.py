"""What the Kingdee K/3 Cloud connector (`kingdee`) is: its config and manifest."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from finoa.connectors.base import ConnectorKind, ConnectorManifest, Direction
from finoa.connectors.kingdee.mapping import BaseData
from finoa.connectors.kingdee.protocol import AppCredentials


class KingdeeConfig(BaseModel):
    """One K/3 Cloud account set, in the names of Kingdee's third-party-login console."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    server_url: str = Field(
        pattern=r"^https?://",
        description="The K/3 Cloud site, e.g. https://erp.example.com/K3Cloud/",
    )
    acct_id: str = Field(min_length=1, description="The account set (数据中心) id")
    user_name: str = Field(min_length=1, description="The integration user")
    auth: Literal["app_secret", "password"] = Field(
        default="app_secret",
        description="app_secret: the signed headers of Kingdee's SDK; password: ValidateUser",
    )
    app_id: str = Field(default="", description="The app id of the third-party login")
    app_secret: str = Field(default="", repr=False, json_schema_extra={"writeOnly": True})
    password: str = Field(default="", repr=False, json_schema_extra={"writeOnly": True})
    lcid: int = Field(default=2052, gt=0, description="Locale id (2052: simplified Chinese)")
    org_num: int = Field(default=0, ge=0, description="Organisation number (0: the default)")
    timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    parallel: int = Field(
        default=8, ge=1, le=64, description="Vouchers in flight at once per delivery batch"
    )
    session_seconds: float = Field(
        default=900.0, gt=60, description="Sign in again after this long (K/3 Cloud: 20 min)"
    )
    base_data: BaseData = Field(default_factory=BaseData)

    @model_validator(mode="after")
    def _credentials(self) -> KingdeeConfig:
        if self.auth == "app_secret" and not (self.app_id and self.app_secret):
            raise ValueError("app_id and app_secret are required with auth app_secret")
        if self.auth == "password" and not self.password:
            raise ValueError("password is required with auth password")
        return self

    @classmethod
    def parse(cls, config: Any) -> KingdeeConfig:
        """The config, or ValueError `field: reason` naming the first bad field."""
        try:
            return cls.model_validate(config)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "config"
            raise ValueError(f"{where}: {first['msg']}") from None

    def credentials(self) -> AppCredentials:
        return AppCredentials(
            self.acct_id, self.user_name, self.app_id, self.app_secret, self.lcid, self.org_num
        )


MANIFEST = ConnectorManifest(
    name="kingdee",
    kind=ConnectorKind.ERP,
    direction=Direction.OUTBOUND,
    actions=("voucher.post",),
    config_schema=KingdeeConfig.model_json_schema(),
    auth="kingdee-app-secret or ValidateUser session",
    max_batch=20,
    description="Kingdee K/3 Cloud WebAPI: GL_VOUCHER Save -> Submit -> Audit, "
    "found again by the hub's reference (K/3 Cloud keeps no idempotency keys).",
)
