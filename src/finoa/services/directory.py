"""An in-process snapshot of master data (主数据) for the hot path.

Submitting or deciding a claim looks up the applicant, their managers, the role holders and
the referenced department, cost center and project. Those change rarely, so each process keeps
a snapshot and reloads it when it is older than `ttl_seconds` (or when told to). A change made
by another process is seen within that time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import select

from finoa.domain.org import Employee, EmployeeRole, OrgChart
from finoa.store.tables import cost_centers, employees, org_units, projects
from finoa.store.uow import Database


@dataclass(frozen=True)
class MasterDataSnapshot:
    employees: Mapping[str, Employee]
    org_units: frozenset[str]
    cost_centers: frozenset[str]
    projects: frozenset[str]
    role_holders: Mapping[EmployeeRole, str]
    # org unit -> the unit it belongs to (None at the top): vouchers are routed by it
    org_parents: Mapping[str, str | None] = field(default_factory=dict)
    # unit heads and cost-center owners: who approves as department head / cost-center owner
    org_chart: OrgChart = field(default_factory=OrgChart)
    # who gets a step whose role nobody holds (settings.fallback_approver); None: refused
    fallback_approver: str | None = None


class MasterDataCache:
    def __init__(
        self, db: Database, ttl_seconds: float = 5.0, *, fallback_approver: str | None = None
    ) -> None:
        self._db = db
        self._fallback = fallback_approver or None
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._snapshot: MasterDataSnapshot | None = None
        self._loaded_at = 0.0

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None

    def get(self) -> MasterDataSnapshot:
        snapshot = self._snapshot
        if snapshot is not None and time.monotonic() - self._loaded_at < self._ttl:
            return snapshot
        with self._lock:
            if self._snapshot is None or time.monotonic() - self._loaded_at >= self._ttl:
                self._snapshot = self._load()
                self._loaded_at = time.monotonic()
            return self._snapshot

    def _load(self) -> MasterDataSnapshot:
        with self._db.engine.connect() as conn:
            people = {
                row.id: Employee(
                    employee_id=row.id,
                    name=row.name,
                    department_id=row.department_id,
                    manager_id=row.manager_id,
                    role=EmployeeRole(row.role),
                    active=bool(row.active),
                    grade=row.grade,
                )
                for row in conn.execute(select(employees).order_by(employees.c.id))
            }
            unit_rows = conn.execute(
                select(org_units.c.id, org_units.c.parent_id, org_units.c.manager_id)
            ).all()
            parents = {r.id: r.parent_id for r in unit_rows}
            units = frozenset(parents)
            owners = {
                r.id: r.owner_id
                for r in conn.execute(select(cost_centers.c.id, cost_centers.c.owner_id))
            }
            centers = frozenset(owners)
            project_ids = frozenset(r[0] for r in conn.execute(select(projects.c.id)))
        holders: dict[EmployeeRole, str] = {}
        for person in people.values():
            if person.role is not EmployeeRole.EMPLOYEE and person.active:
                holders.setdefault(person.role, person.employee_id)
        chart = OrgChart({r.id: r.manager_id for r in unit_rows}, parents, owners)
        return MasterDataSnapshot(
            people, units, centers, project_ids, holders, parents, chart, self._fallback
        )
