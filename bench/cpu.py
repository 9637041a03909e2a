"""CPU used by the processes of a benchmark, read from /proc (Linux)."""

from __future__ import annotations

import os
import time


class CpuShares:
    """The cores each role used from now until `cores()`: CPU seconds over wall seconds, read
    from /proc for the given pids and their children (the worker's archive builders, trytond's
    threads), and for PostgreSQL's processes, and the whole machine."""

    def __init__(self, roles: dict[str, list[int]]) -> None:
        self.roles = roles
        self.started = time.monotonic()
        self.before = self._sample()

    @staticmethod
    def _processes() -> dict[int, tuple[int, str, float]]:
        """pid -> (parent pid, command name, CPU seconds)."""
        tick = os.sysconf("SC_CLK_TCK")
        found = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    head, _, rest = f.read().rpartition(")")
            except OSError:
                continue
            fields = rest.split()
            name = head.partition("(")[2]
            found[int(entry)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / tick)
        return found

    def _sample(self) -> dict[str, float]:
        processes = self._processes()
        children: dict[int, list[int]] = {}
        for pid, (parent, _, _) in processes.items():
            children.setdefault(parent, []).append(pid)

        def tree(pid: int) -> float:
            return processes.get(pid, (0, "", 0.0))[2] + sum(tree(c) for c in children.get(pid, []))

        sample = {role: sum(tree(pid) for pid in pids) for role, pids in self.roles.items()}
        sample["postgresql"] = sum(t for _, name, t in processes.values() if name == "postgres")
        with open("/proc/stat") as f:
            busy = [int(v) for v in f.readline().split()[1:]]
        sample["machine"] = (sum(busy) - busy[3] - busy[4]) / os.sysconf("SC_CLK_TCK")
        return sample

    def cpu_seconds(self) -> tuple[dict[str, float], float]:
        """CPU seconds of each role since the start, and the wall seconds."""
        after, seconds = self._sample(), time.monotonic() - self.started
        return {role: after[role] - self.before[role] for role in after}, seconds

    def cores(self) -> dict[str, float]:
        used, seconds = self.cpu_seconds()
        return {role: round(cpu / seconds, 2) for role, cpu in used.items()}
