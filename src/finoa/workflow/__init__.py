"""Approval workflows: BPMN/DMN process definitions run on SpiffWorkflow."""

from finoa.workflow.engine import (
    OUTCOMES,
    ROLES,
    ApprovalEngine,
    EngineState,
    PendingStep,
    StepNotPending,
)

__all__ = [
    "OUTCOMES",
    "ROLES",
    "ApprovalEngine",
    "EngineState",
    "PendingStep",
    "StepNotPending",
]
