"""Benchmark: the approval engine's cost per claim lifecycle, without any database.

A lifecycle is what the hub asks of the engine for one claim: start the instance (evaluate the
DMN, run to the first approval step, serialize the state to store it), then, for every
decision, read the stored state, record the decision, run on and serialize again, until the
outcome. Two processes:

* the shipped process (`claim_approval.bpmn` + `approval_levels.dmn`), claims cycling through
  its three amount bands: manager only, manager and finance director, all three levels;
* a countersign process (`bench/countersign_approval.bpmn`): one step in mode `all` with three
  assignees (assigned after start, as the hub does), who all approve.

Each is measured twice: with the engine's live instances (a decision on a state this process
just wrote skips restoring it: the hub's usual path) and with them off (every decision
restores the state from its JSON, as after a restart or in another worker). The figures are
the median of several rounds: ms of one core per lifecycle (CPU time of this process), and
decisions per second of one core's CPU time and of the wall clock (on a shared machine the
wall clock also counts the time other work had the core). The target is at most 3 ms per
lifecycle. The reference, measured in the same run, is the default process on stock
SpiffWorkflow with its own serializer (restoring every state): `default_restored_over_stock`
is what finoa's engine costs relative to it.

Usage: python bench/workflow.py [--claims 300] [--rounds 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.serializer.config import CAMUNDA_CONFIG
from SpiffWorkflow.util.task import TaskState

from finoa.workflow import Action, ApprovalEngine, Decision, EngineState
from finoa.workflow.expressions import SCRIPT_ENGINE
from finoa.workflow.specs import DEFAULT_BPMN, DEFAULT_DMN

COUNTERSIGN_BPMN = Path(__file__).resolve().parent / "countersign_approval.bpmn"
COMMITTEE = ("E0002", "E0003", "E0004")
# one claim per amount band of approval_levels.dmn: manager; + finance director; + CFO
AMOUNTS_FEN = (88_000, 600_000, 6_000_000)
TARGET_MS = 3.0

Lifecycle = Callable[[ApprovalEngine, int], int]  # runs claim n to its outcome; decisions


def facts(n: int, amount_fen: int) -> dict[str, object]:
    return {
        "claim_id": f"CL-{n:06}",
        "amount_fen": amount_fen,
        "department": "D04",
        "category": "travel",
    }


def approve(actor: str) -> Decision:
    return Decision(Action.APPROVE, actor=actor, comment="同意")


def default_lifecycle(engine: ApprovalEngine, n: int) -> int:
    """One claim through the shipped process: every level approves."""
    state: EngineState = engine.start(facts(n, AMOUNTS_FEN[n % len(AMOUNTS_FEN)]))
    decisions = 0
    while state.outcome is None:
        (step,) = state.pending
        state = engine.decide(state.state, step.step_id, approve(f"approver-{step.role}"))
        decisions += 1
    assert state.outcome == "approved", state.outcome
    return decisions


def countersign_lifecycle(engine: ApprovalEngine, n: int) -> int:
    """One claim through the countersign step: three assignees, each approves."""
    state = engine.start(facts(n, 600_000))
    (step,) = state.pending
    state = engine.assign(state.state, step.step_id, COMMITTEE)
    for actor in COMMITTEE:
        state = engine.decide(state.state, step.step_id, approve(actor))
    assert state.outcome == "approved", state.outcome
    return len(COMMITTEE)


class StockSpiffWorkflow:
    """The reference: the same process on stock SpiffWorkflow's workflow class and JSON
    serializer (the spec written into every state), none of finoa's caches; only the script
    engine is finoa's, since the shipped tables write `true` / `false`."""

    def __init__(self) -> None:
        parser = CamundaParser()
        parser.add_dmn_file(str(DEFAULT_DMN))
        parser.add_bpmn_file(str(DEFAULT_BPMN))
        self.spec = parser.get_spec("claim_approval")
        self.subprocesses = parser.get_subprocess_specs("claim_approval")
        registry = BpmnWorkflowSerializer.configure(CAMUNDA_CONFIG)
        self.serializer = BpmnWorkflowSerializer(registry)

    def restore(self, state: str) -> BpmnWorkflow:
        workflow = self.serializer.deserialize_json(state)
        workflow.script_engine = SCRIPT_ENGINE
        return workflow


def stock_lifecycle(reference: StockSpiffWorkflow, n: int) -> int:
    """`default_lifecycle` on stock SpiffWorkflow: restore, decide, run on, serialize."""
    workflow = BpmnWorkflow(reference.spec, reference.subprocesses, script_engine=SCRIPT_ENGINE)
    workflow.task_tree.data.update(facts(n, AMOUNTS_FEN[n % len(AMOUNTS_FEN)]))
    workflow.do_engine_steps()
    state = reference.serializer.serialize_json(workflow)
    decisions = 0
    while not (workflow := reference.restore(state)).is_completed():
        (task,) = workflow.get_tasks(state=TaskState.READY, manual=True)
        task.data.update(approved=True, comment="同意")
        task.run()
        workflow.do_engine_steps()
        state = reference.serializer.serialize_json(workflow)
        decisions += 1
    ended = {t.task_spec.name for t in workflow.get_tasks(state=TaskState.COMPLETED)}
    assert "approved" in ended and "rejected" not in ended, ended
    return decisions


def measure(
    engine: Any, lifecycle: Callable[[Any, int], int], claims: int, rounds: int
) -> dict[str, Any]:
    lifecycle(engine, 0)  # warm: the definition is parsed and the expressions compiled
    cpu_ms: list[float] = []
    per_second: list[float] = []
    per_cpu_second: list[float] = []
    decisions = 0
    for _ in range(rounds):
        decisions = 0
        wall, cpu = time.perf_counter(), time.process_time()
        for n in range(claims):
            decisions += lifecycle(engine, n)
        cpu = time.process_time() - cpu
        wall = time.perf_counter() - wall
        cpu_ms.append(cpu * 1000 / claims)
        per_second.append(decisions / wall)
        per_cpu_second.append(decisions / cpu)
    return {
        "ms_per_lifecycle": round(statistics.median(cpu_ms), 3),
        "decisions_per_lifecycle": round(decisions / claims, 2),
        "decisions_per_cpu_s": round(statistics.median(per_cpu_second)),
        "decisions_per_s": round(statistics.median(per_second)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=300, help="lifecycles per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    processes: dict[str, tuple[Callable[[int], ApprovalEngine], Lifecycle]] = {
        "default": (lambda live: ApprovalEngine(live_instances=live), default_lifecycle),
        "countersign": (
            lambda live: ApprovalEngine(COUNTERSIGN_BPMN, DEFAULT_DMN, live_instances=live),
            countersign_lifecycle,
        ),
    }
    results: dict[str, Any] = {"claims": args.claims, "rounds": args.rounds}
    over = []
    for name, (build, lifecycle) in processes.items():
        for variant, live in (("live", 1024), ("restored", 0)):
            figures = measure(build(live), lifecycle, args.claims, args.rounds)
            results[f"{name}_{variant}"] = figures
            print(f"{name} process, {variant} instances: {figures}")
            if figures["ms_per_lifecycle"] > TARGET_MS:
                over.append(f"{name}_{variant}")
    reference = measure(StockSpiffWorkflow(), stock_lifecycle, args.claims, args.rounds)
    print(f"reference, the default process on stock SpiffWorkflow: {reference}")
    results["stock_spiffworkflow_default"] = reference
    results["default_restored_over_stock"] = round(
        results["default_restored"]["ms_per_lifecycle"] / reference["ms_per_lifecycle"], 3
    )
    results["target_ms_per_lifecycle"] = TARGET_MS
    results["over_target"] = over
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
