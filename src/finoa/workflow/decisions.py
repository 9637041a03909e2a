"""Decisions on approval steps: the actions, the step modes and the rule each action follows.

A decision is ``Decision(action, actor, comment, target, position)``. Each step of a process
declares the actions it allows (``PendingStep.actions``) and a mode:

* ``single`` -- one approver decides the step; people added by 加签 decide in turn;
* ``all`` (会签, countersign) -- every assignee must approve; one rejection rejects the step;
* ``any`` (或签, or-sign) -- the first decision of any assignee decides the step.

What an action does is a *handler* in ``ACTION_HANDLERS``: given the step's mode, its record
(assignees and the decisions taken so far) and the new decision, it returns the record the
step keeps and says whether the step is now decided (approved or not) or still waits:

* ``approve`` -- the approver passes; the step is approved once everyone it waits for has
  passed (the whole chain of a single step, every assignee of a countersign, anyone of an
  or-sign);
* ``reject`` -- the step, and so the claim, is rejected;
* ``transfer`` (转交) -- ``target`` takes the actor's place among the assignees; nothing is
  decided;
* ``add_signer`` (加签) -- ``target`` joins the step: ``position="before"`` decides before the
  actor, who then decides again; ``"after"`` counts as the actor's approval and ``target``
  decides next. On countersign and or-sign steps the added person is one more assignee;
* ``return`` (退回) -- the step is neither approved nor rejected: the caller sends the claim back
  to the applicant (no ``target``) or to an earlier step (``target`` is its BPMN id), see
  :meth:`finoa.workflow.engine.ApprovalEngine.send_back`.

``withdraw`` (撤回) is the applicant's, not an approver's: the approval service ends the
instance before anyone decided (see ``services/approvals.py``); no step allows it.

Who a step waits for now is :func:`awaiting`. A single step that was never assigned through
the engine (routed by role outside it) waits for whoever its caller routed it to; its first
transfer or 加签 makes the actor its assignee. Nothing in this module does I/O or knows
SpiffWorkflow; the engine stores a step's record in the workflow state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

__all__ = [
    "ACTION_HANDLERS",
    "DEFAULT_ACTIONS",
    "PATTERN_ACTIONS",
    "Action",
    "ActorNotAssigned",
    "Decision",
    "SignerPosition",
    "StepMode",
    "StepRecord",
    "UnsupportedAction",
    "apply_decision",
    "awaiting",
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

PATTERN_ACTIONS: Final[tuple[Action, ...]] = (
    Action.APPROVE,
    Action.REJECT,
    Action.TRANSFER,
    Action.ADD_SIGNER,
    Action.RETURN,
)
"""What the shipped process's steps allow: everything an approver can do."""

_PASSING: Final = frozenset({"approve", "add_signer:after"})


class SignerPosition(StrEnum):
    """Where a person added by 加签 decides: before or after the one who added them."""

    BEFORE = "before"
    AFTER = "after"


@dataclass(frozen=True)
class Decision:
    """One approver's decision on one step; ``action`` may be given as its string value.

    ``target`` is the person a transfer or 加签 names, or the BPMN id of the step a return
    goes back to; ``position`` says where an added signer decides."""

    action: Action
    actor: str | None = None
    comment: str | None = None
    target: str | None = None
    position: SignerPosition | None = None

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
        if self.target is not None and (not isinstance(self.target, str) or not self.target):
            raise TypeError("target must be a non-empty str or None")
        if self.position is not None:
            object.__setattr__(self, "position", SignerPosition(self.position))
        if self.action in (Action.TRANSFER, Action.ADD_SIGNER) and self.target is None:
            raise ValueError(f"{self.action.value} needs a target: the person it names")
        if self.action is Action.ADD_SIGNER and self.position is None:
            object.__setattr__(self, "position", SignerPosition.BEFORE)

    @property
    def kind(self) -> str:
        """The action, with the position for 加签 (``add_signer:before``)."""
        if self.action is Action.ADD_SIGNER and self.position is not None:
            return f"{self.action.value}:{self.position.value}"
        return self.action.value

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form, as kept in the workflow state (``target``/``position`` only when
        set, so records of approvals and rejections read as they always did)."""
        data: dict[str, str | None] = {
            "action": self.action.value,
            "actor": self.actor,
            "comment": self.comment,
        }
        if self.target is not None:
            data["target"] = self.target
        if self.position is not None:
            data["position"] = self.position.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Inverse of :meth:`to_dict`."""
        position = data.get("position")
        return cls(
            Action(data["action"]),
            data.get("actor"),
            data.get("comment"),
            data.get("target"),
            SignerPosition(position) if position else None,
        )


@dataclass(frozen=True)
class StepRecord:
    """A step's assignees (empty: assigned outside the engine) and its decisions so far.

    For a single step the assignees are a chain, decided in order (people added by 加签 stand
    in it); for countersign and or-sign steps they are a set."""

    assignees: tuple[str, ...] = ()
    decisions: tuple[Decision, ...] = ()

    @property
    def decided_by(self) -> tuple[str, ...]:
        """Actors who have decided on the step, in order (anonymous decisions left out)."""
        return tuple(d.actor for d in self.decisions if d.actor is not None)

    @property
    def passed(self) -> frozenset[str]:
        """Actors who have approved (or approved and added a signer after themselves)."""
        done: set[str] = set()
        for d in self.decisions:
            if d.actor is None:
                continue
            if d.kind in _PASSING:
                done.add(d.actor)
        return frozenset(done)

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

ActionHandler = Callable[[StepMode, StepRecord, Decision], tuple[StepRecord, StepVerdict]]


def awaiting(mode: StepMode, record: StepRecord) -> tuple[str, ...]:
    """Who the step waits for now: the next one in a single step's chain, or every
    countersign / or-sign assignee who has not passed. Empty: not assigned in the engine."""
    passed = record.passed
    left = tuple(a for a in record.assignees if a not in passed)
    if mode is StepMode.SINGLE:
        return left[:1]
    return left


def _approve(
    mode: StepMode, record: StepRecord, decision: Decision
) -> tuple[StepRecord, StepVerdict]:
    if mode is StepMode.ANY:
        return record, True
    return record, True if not awaiting(mode, record) else None


def _reject(
    mode: StepMode, record: StepRecord, decision: Decision
) -> tuple[StepRecord, StepVerdict]:
    return record, False


def _transfer(
    mode: StepMode, record: StepRecord, decision: Decision
) -> tuple[StepRecord, StepVerdict]:
    target = decision.target
    assert target is not None  # Decision requires one for a transfer
    if target in record.assignees:
        raise ActorNotAssigned(f"{target!r} is an assignee of the step already")
    people = tuple(target if a == decision.actor else a for a in record.assignees)
    return StepRecord(people, record.decisions), None


def _add_signer(
    mode: StepMode, record: StepRecord, decision: Decision
) -> tuple[StepRecord, StepVerdict]:
    target = decision.target
    assert target is not None and decision.actor is not None
    if target in record.assignees:
        raise ActorNotAssigned(f"{target!r} is an assignee of the step already")
    people = list(record.assignees)
    at = people.index(decision.actor)
    if mode is not StepMode.SINGLE:
        people.append(target)
    elif decision.position is SignerPosition.AFTER:
        people.insert(at + 1, target)
    else:
        people.insert(at, target)
    return StepRecord(tuple(people), record.decisions), None


def _return(
    mode: StepMode, record: StepRecord, decision: Decision
) -> tuple[StepRecord, StepVerdict]:
    return record, None


ACTION_HANDLERS: Final[Mapping[Action, ActionHandler]] = {
    Action.APPROVE: _approve,
    Action.REJECT: _reject,
    Action.TRANSFER: _transfer,
    Action.ADD_SIGNER: _add_signer,
    Action.RETURN: _return,
}
"""The implemented actions. A handler sees the record *with* the new decision appended (and,
for a single step nobody assigned, the actor as its assignee)."""


def apply_decision(
    step: str,
    mode: StepMode,
    allowed: Sequence[Action],
    record: StepRecord,
    decision: Decision,
) -> tuple[StepRecord, StepVerdict]:
    """Check ``decision`` against the step and return the new record and the verdict.

    Raises :class:`UnsupportedAction` for an action the step does not allow and
    :class:`ActorNotAssigned` when the step has assignees and the actor is not one it waits
    for now, or when a countersign/or-sign step has no assignees yet.
    """
    handler = ACTION_HANDLERS.get(decision.action)
    if decision.action not in allowed or handler is None:
        raise UnsupportedAction(decision.action, step, allowed)
    if not record.assignees and decision.action in (Action.TRANSFER, Action.ADD_SIGNER):
        # The step was routed outside the engine: the one who acts on it is its assignee.
        if decision.actor is None:
            raise ActorNotAssigned(f"{decision.action.value} on step {step!r} needs an actor")
        record = StepRecord((decision.actor,), record.decisions)
    if mode is not StepMode.SINGLE and not record.assignees:
        raise ActorNotAssigned(f"step {step!r} ({mode.value}) has no assignees yet")
    if record.assignees:
        if decision.actor not in record.assignees:
            raise ActorNotAssigned(f"{decision.actor!r} is not an assignee of step {step!r}")
        if decision.actor not in awaiting(mode, record):
            if decision.actor in record.passed:
                raise ActorNotAssigned(f"{decision.actor!r} has already decided step {step!r}")
            raise ActorNotAssigned(f"step {step!r} waits for {list(awaiting(mode, record))}")
    updated = StepRecord(record.assignees, (*record.decisions, decision))
    return handler(mode, updated, decision)


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
