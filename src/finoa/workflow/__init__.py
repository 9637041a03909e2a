"""Approval workflows: BPMN/DMN process definitions run on SpiffWorkflow.

Modules: ``engine`` (the API: start, decide, assign), ``decisions`` (actions, step modes and
their rules), ``specs`` (loading and checking definitions, their versions and caches),
``serialization`` (the stored state, its format versions and migrations), ``expressions`` (the
cached script engine) and ``instance`` (the workflow object).
"""

from finoa.workflow.decisions import (
    Action,
    ActorNotAssigned,
    Decision,
    SignerPosition,
    StepMode,
    UnsupportedAction,
)
from finoa.workflow.engine import (
    RETURNED_TO_APPLICANT,
    ApprovalEngine,
    CannotReturn,
    EngineState,
    PendingStep,
    StepNotPending,
)
from finoa.workflow.serialization import STATE_FORMAT_VERSION, UnsupportedStateFormat
from finoa.workflow.specs import OUTCOMES, ROLES

__all__ = [
    "OUTCOMES",
    "RETURNED_TO_APPLICANT",
    "ROLES",
    "STATE_FORMAT_VERSION",
    "Action",
    "ActorNotAssigned",
    "ApprovalEngine",
    "CannotReturn",
    "Decision",
    "EngineState",
    "PendingStep",
    "SignerPosition",
    "StepMode",
    "StepNotPending",
    "UnsupportedAction",
    "UnsupportedStateFormat",
]
