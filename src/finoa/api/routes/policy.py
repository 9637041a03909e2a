"""The expense policy in force (费用标准): `GET /api/v1/policy`, scope `claims:read`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from finoa.api.deps import HubDep, require
from finoa.api.json_body import StrictJsonRoute
from finoa.api.problems import problem_responses
from finoa.domain.policy import PolicyFile
from finoa.security.tokens import Principal
from finoa.services.policy import policy_in_force, policy_source

router = APIRouter(
    prefix="/policy",
    tags=["policy"],
    route_class=StrictJsonRoute,
    responses=problem_responses(401, 403, 503),
)
Reader = Annotated[Principal, Depends(require("claims:read"))]


class PolicyOut(BaseModel):
    """The expense policy claims are checked against, with every version."""

    source: str = Field(description="the file it was read from (policy_file, or the default)")
    version_today: str | None = Field(description="the version in force today, if any")
    policy: PolicyFile


@router.get("", summary="The expense policy: city tiers, versions, limits per grade and tier")
async def get_policy(hub: HubDep, _: Reader) -> PolicyOut:
    policy = policy_in_force(hub.settings)
    today = policy.version_on(datetime.now(hub.settings.company_zone).date())
    return PolicyOut(
        source=policy_source(hub.settings),
        version_today=today.version if today else None,
        policy=policy.file,
    )
