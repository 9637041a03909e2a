"""The workflow object a claim runs in: SpiffWorkflow's, with cheaper bookkeeping.

SpiffWorkflow walks the whole task tree after every completed task to refresh WAITING tasks
and once per engine-step round to find READY ones; for a flat (subprocess-free) process a scan
of the task dict is equivalent and several times cheaper. Anything with subprocesses or
waiting tasks takes SpiffWorkflow's own code path.
"""

from __future__ import annotations

import logging

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

__all__ = ["ClaimWorkflow"]

# SpiffWorkflow logs every task state change at INFO, and while its workflow logger has no
# level of its own it also lists every task of the instance for each entry. Neither is wanted
# on the hot path; configure these loggers after import to see them again.
for _name in ("spiff.workflow", "spiff.task"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class ClaimWorkflow(BpmnWorkflow):  # type: ignore[misc]
    """BpmnWorkflow with dict scans instead of tree walks for flat processes."""

    def update_waiting_tasks(self) -> None:
        if self.subprocesses or any(t.state == TaskState.WAITING for t in self.tasks.values()):
            super().update_waiting_tasks()

    def run_engine_steps(self) -> None:
        """Run READY automatic tasks until only user tasks (or waits) remain."""
        if self.subprocesses or self.event_manager.tasks:
            self.do_engine_steps()
            return
        while True:
            ready = [
                t
                for t in self.tasks.values()
                if t.state == TaskState.READY and not t.task_spec.manual
            ]
            if not ready:
                break
            for task in ready:
                if task.state == TaskState.READY:
                    task.run()
            if self.subprocesses or self.event_manager.tasks:
                self.do_engine_steps()
                return
