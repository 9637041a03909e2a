"""Decisions on approval steps: the actions, the step modes and the rule each action follows.

A decision is ``Decision(action, actor, comment)``. Each step of a process declares the actions
it allows (``PendingStep.actions``) and a mode:

* ``single`` -- one approver (assigned by the caller, e.g. by role) decides the step;
* ``all`` (会签, countersign) -- every assignee must approve; one rejection rejects the step;
* ``any`` (或签, or-sign) -- the first decision of any assignee decides the step.

What an action does is a *handler* in ``ACTION_HANDLERS``: given the step's mode, its record
(assignees and the decisions taken so far) and the new decision, it says whether the step is
now decided (approved or not) or still waits. ``approve`` and ``reject`` are implemented;
``return`` (退回), ``transfer`` (转交), ``add_signer`` (加签) and ``withdraw`` (撤回) are named so
that callers and process definitions can speak of them, and are refused with
:class:`UnsupportedAction` until a handler is added here. Nothing in this module does I/O or
knows SpiffWorkflow; the engine stores a step's record in the workflow state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "ACTION_HANDLERS",
    "DEFAULT_ACTIONS",
    "Action",
    "ActorNotAssigned",
    "Decision",
    "StepMode",
    "StepRecord",
    "UnsupportedAction",
    "apply_decision",
    "check_assignees",
]


class Action(StrEnum):
    """What an approver can do with a step."""

    APPROVE = "approve"
    REJECT = "reject"
    RETURN = "return"  # 退回: send the claim back to an earlier step or the applicant
    TRANSFER = "transfer"  # 转交: hand the step to someone else
    ADD_SIGNER = "add_signer"  # 加签: add an approver to the step
    WITHDRAW = "withdraw"  # 撤回: the applicant takes the claim back


class StepMode(StrEnum):
    """How the decisions of a step's assignees combine."""

    SINGLE = "single"
    ALL = "all"  # 会签: everyone must approve
    ANY = "any"  # 或签: the first decision wins


DEFAULT_ACTIONS: Final[tuple[Action, ...]] = (Action.APPROVE, Action.REJECT)
"""Actions a step allows when its definition names none."""


@dataclass(frozen=True)
class Decision:
    """One approver's decision on one step; ``action`` may be given as its string value."""

    action: Action
    actor: str | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.action, Action):
            pass
        elif isinstance(self.action, str):
            try:
                object.__setattr__(self, "action", Action(self.action))
            except ValueError:
                known = ", ".join(a.value for a in Action)
                raise ValueError(f"unknown action {self.action!r}; known: {known}") from None
        else:
            raise TypeError(f"action must be an Action, got {type(self.action).__name__}")
        if self.actor is not None and not isinstance(self.actor, str):
            raise TypeError("actor must be a str or None")
        if self.comment is not None and not isinstance(self.comment, str):
            raise TypeError("comment must be a str or None")

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form, as kept in the workflow state."""
        return {"action": self.action.value, "actor": self.actor, "comment": self.comment}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Inverse of :meth:`to_dict`."""
        return cls(Action(data["action"]), data.get("actor"), data.get("comment"))


@dataclass(frozen=True)
class StepRecord:
    """A step's assignees (empty: assigned outside the engine) and its decisions so far."""

    assignees: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = ()

    @property
    def decided_by(self) -> tuple[str, ...]:
        """Actors who have decided on the step, in order (anonymous decisions left out)."""
        return tuple(d.actor for d in self.decisions if d.actor is not None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, as kept in the workflow state."""
        return {
            "assignees": list(self.assignees),
            "decisions": [d.to_dict() for d in self.decisions],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> StepRecord:
        """Inverse of :meth:`to_dict`; ``None`` is a step nobody has touched."""
        if not data:
            return cls()
        return cls(
            tuple(data.get("assignees", ())),
            tuple(Decision.from_dict(d) for d in data.get("decisions", ())),
        )


class UnsupportedAction(ValueError):
    """The action is not one the step allows (or not one the engine implements)."""

    def __init__(self, action: Action, step: str, allowed: Sequence[Action]) -> None:
        super().__init__(action, step)
        self.action = action
        self.step = step
        self.allowed = tuple(allowed)

    def __str__(self) -> str:
        allowed = ", ".join(a.value for a in self.allowed)
        return (
            f"action {self.action.value!r} is not supported on step {self.step!r}"
            f" (allowed: {allowed})"
        )


class ActorNotAssigned(PermissionError):
    """The actor may not decide this step (not an assignee, or has decided already)."""


StepVerdict = bool | None
"""What a handler says: True/False -- the step is decided approved/rejected; None -- it waits."""

ActionHandler = Callable[[StepMode, StepRecord, Decision], StepVerdict]


def _approve(mode: StepMode, record: StepRecord, decision: Decision) -> StepVerdict:
    if mode is StepMode.ALL:
        approvers = {d.actor for d in record.decisions if d.action is Action.APPROVE}
        return True if approvers.issuperset(record.assignees) else None
    return True


def _reject(mode: StepMode, record: StepRecord, decision: Decision) -> StepVerdict:
    return False


ACTION_HANDLERS: Final[Mapping[Action, ActionHandler]] = {
    Action.APPROVE: _approve,
    Action.REJECT: _reject,
}
"""The implemented actions. A handler sees the record *with* the new decision appended."""


def apply_decision(
    step: str,
    mode: StepMode,
    allowed: Sequence[Action],
    record: StepRecord,
    decision: Decision,
) -> tuple[StepRecord, StepVerdict]:
    """Check ``decision`` against the step and return the new record and the verdict.

    Raises :class:`UnsupportedAction` for an action the step does not allow and
    :class:`ActorNotAssigned` when the step has assignees and the actor is not one still to
    decide, or when a countersign/or-sign step has no assignees yet.
    """
    handler = ACTION_HANDLERS.get(decision.action)
    if decision.action not in allowed or handler is None:
        raise UnsupportedAction(decision.action, step, allowed)
    if mode is not StepMode.SINGLE and not record.assignees:
        raise ActorNotAssigned(f"step {step!r} ({mode.value}) has no assignees yet")
    if record.assignees:
        if decision.actor not in record.assignees:
            raise ActorNotAssigned(f"{decision.actor!r} is not an assignee of step {step!r}")
        if decision.actor in record.decided_by:
            raise ActorNotAssigned(f"{decision.actor!r} has already decided step {step!r}")
    updated = StepRecord(record.assignees, (*record.decisions, decision))
    return updated, handler(mode, updated, decision)


def check_assignees(step: str, mode: StepMode, assignees: Sequence[str]) -> tuple[str, ...]:
    """Validate the people a step is assigned to: distinct non-empty ids, one for ``single``."""
    if isinstance(assignees, str) or not all(isinstance(a, str) and a for a in assignees):
        raise TypeError("assignees must be a sequence of non-empty str")
    people = tuple(assignees)
    if not people or len(set(people)) != len(people):
        raise ValueError(f"step {step!r} needs distinct assignees, got {list(people)}")
    if mode is StepMode.SINGLE and len(people) != 1:
        raise ValueError(f"step {step!r} is decided by one person, got {len(people)} assignees")
    return people
