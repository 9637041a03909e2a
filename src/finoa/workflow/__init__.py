"""Approval workflows: BPMN/DMN process definitions run on SpiffWorkflow.

Modules: ``engine`` (the API: start, decide, assign), ``decisions`` (actions, step modes and
their rules), ``specs`` (loading and checking definitions, their versions and caches),
``serialization`` (the stored state, its format versions and migrations), ``expressions`` (the
cached script engine) and ``instance`` (the workflow object).
"""

from finoa.workflow.decisions import Action, ActorNotAssigned, Decision, StepMode, UnsupportedAction
from finoa.workflow.engine import ApprovalEngine, EngineState, PendingStep, StepNotPending
from finoa.workflow.serialization import STATE_FORMAT_VERSION, UnsupportedStateFormat
from finoa.workflow.specs import OUTCOMES, ROLES

__all__ = [
    "OUTCOMES",
    "ROLES",
    "STATE_FORMAT_VERSION",
    "Action",
    "ActorNotAssigned",
    "ApprovalEngine",
    "Decision",
    "EngineState",
    "PendingStep",
    "StepMode",
    "StepNotPending",
    "UnsupportedAction",
    "UnsupportedStateFormat",
]
