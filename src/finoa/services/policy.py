"""The expense policy at submission: which policy is in force, and what it says of a claim.

The policy file is `policy_file` in the settings (finoa.yaml or FINOA_POLICY_FILE), else the
default shipped with finoa (`finoa/rules/expense_policy.yaml`). It is parsed once per file
version (path, size and modification time) and kept, so a submission costs a dictionary
look-up per line; a file replaced on disk applies from the next submission.
"""

from __future__ import annotations

import threading
from importlib import resources
from pathlib import Path
from typing import Any

from finoa.config import Settings
from finoa.domain.claim import ClaimLine
from finoa.domain.policy import (
    ExpensePolicy,
    PolicyBlocked,
    PolicyLine,
    first_block,
    parse_policy,
    read_policy,
)
from finoa.schemas import ClaimSubmission
from finoa.services.context import Hub

_cache: dict[tuple[str, int, int], ExpensePolicy] = {}
_lock = threading.Lock()
DEFAULT_SOURCE = "finoa/rules/expense_policy.yaml"


def default_policy() -> ExpensePolicy:
    """The policy shipped with finoa."""
    key = (DEFAULT_SOURCE, 0, 0)
    with _lock:
        policy = _cache.get(key)
        if policy is None:
            text = resources.files("finoa.rules").joinpath("expense_policy.yaml").read_text("utf-8")
            policy = _cache[key] = parse_policy(text, DEFAULT_SOURCE)
        return policy


def policy_source(settings: Settings) -> str:
    """Where the policy in force comes from."""
    return settings.policy_file or DEFAULT_SOURCE


def policy_in_force(settings: Settings) -> ExpensePolicy:
    """The policy the settings name (parsed once per file version), or the default."""
    if not settings.policy_file:
        return default_policy()
    path = Path(settings.policy_file)
    try:
        stat = path.stat()
    except OSError:
        return read_policy(path)  # raises PolicyFileError naming the file
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        policy = _cache.get(key)
        if policy is None:
            policy = _cache[key] = read_policy(path)
        return policy


def check_claim_policy(
    hub: Hub, submission: ClaimSubmission, lines: list[ClaimLine]
) -> dict[str, Any] | None:
    """What the policy says of a claim: the claim's `policy_check` record, or None when no
    rule applies to any of its lines. A breach of a `block` rule raises PolicyBlocked (422,
    naming the line's amount, the rule and the limit) before anything is written."""
    policy = policy_in_force(hub.settings)
    applicant = hub.masterdata.get().employees.get(submission.applicant_id)
    grade = applicant.grade if applicant is not None else None
    checks = policy.check(
        grade,
        [
            PolicyLine(
                i,
                line.category.value,
                line.amount_fen,
                line.expense_date,
                given.city,
                given.nights,
                given.days,
            )
            for i, (line, given) in enumerate(zip(lines, submission.lines, strict=True))
        ],
    )
    blocked = first_block(checks)
    if blocked is not None:
        raise PolicyBlocked(blocked)
    if not checks:
        return None
    return {
        "versions": sorted({c.policy_version for c in checks}),
        "checks": [c.as_record() for c in checks],
        "breaches": [c.as_record() for c in checks if c.breached],
    }


def policy_breached(claim: dict[str, Any]) -> bool:
    """The DMN routing input: a flagged breach on the claim."""
    check = claim.get("policy_check")
    return bool(check and check["breaches"])
