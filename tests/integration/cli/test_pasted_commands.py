"""Every command the README's table shows and every command the demo prints, pasted into a
shell (`bash -c`) in a fresh folder: each succeeds, or fails with a short `error:` message
and a non-zero exit code, never a traceback.

Commands that serve (the hub, a worker, a simulator) are pasted too: they must come up and
stop cleanly on SIGTERM. Their `--port` is swapped for a free one, so that runs on a shared
machine do not collide; nothing else in a pasted command is changed.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from support.processes import free_port

from finoa.cli_reference import table_examples

README = Path(__file__).parents[3] / "README.md"
BIN_DIR = Path(sys.executable).parent
# command words -> how to tell it serves: a path answering below 500, or a line it prints
SERVING: dict[tuple[str, ...], str] = {
    ("serve",): "/health",
    ("sim", "oa"): "/_sim/stats",
    ("sim", "erp"): "/_sim/stats",
    ("sim", "weaver"): "/_sim/stats",
    ("sim", "dingtalk"): "/_sim/stats",
    ("sim", "wecom"): "/_sim/stats",
    ("sim", "sap"): "/_sim/stats",
    ("sim", "yonyou"): "/_sim/stats",
    ("sim", "tax-platform"): "/_sim/stats",
    ("sim", "archive"): "/_sim/stats",
    # serves on the port its site was made with (the README's `erp tryton init … --port 8000`)
    ("erp", "tryton", "serve"): "http://127.0.0.1:8000/",
    ("worker",): "delivering the outbox",
}


@dataclass(frozen=True)
class Shell:
    """A fresh folder and an environment with no FINOA_* settings, as a newcomer has."""

    cwd: Path
    env: dict[str, str]

    @classmethod
    def fresh(cls, cwd: Path, *, finoa_on_path: bool) -> Shell:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FINOA_")}
        path = [p for p in env.get("PATH", "").split(os.pathsep) if Path(p) != BIN_DIR]
        env["PATH"] = os.pathsep.join(([str(BIN_DIR)] if finoa_on_path else []) + path)
        cwd.mkdir(parents=True, exist_ok=True)
        return cls(cwd, env)

    def run(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def serve(
        self,
        command: str,
        ready: str,
        port: int | None,
        while_serving: Callable[[], None] = lambda: None,
    ) -> str:
        """Start a serving command, wait until it serves, run `while_serving`, stop it; its
        whole output."""
        log = self.cwd / f"serving-{time.monotonic_ns()}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.cwd,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 60
            while not _serves(ready, port, log):
                assert process.poll() is None, (command, log.read_text())
                assert time.monotonic() < deadline, (command, "did not come up", log.read_text())
                time.sleep(0.05)  # readiness polling with a deadline
            while_serving()
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        return log.read_text(errors="replace")


def _serves(ready: str, port: int | None, log: Path) -> bool:
    if not ready.startswith(("/", "http://")):
        return ready in log.read_text(errors="replace")
    url = ready if ready.startswith("http://") else f"http://127.0.0.1:{port}{ready}"
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


def finoa_words(command: str) -> tuple[str, ...]:
    """The words after `finoa` (or the path of its script) up to the first option (three at
    the most: `erp tryton serve`)."""
    words = shlex.split(command)
    at = next((i for i, w in enumerate(words) if Path(w).name == "finoa"), None)
    if at is None:
        return ()
    return tuple(itertools.takewhile(lambda w: not w.startswith("-"), words[at + 1 :]))[:3]


def with_free_port(command: str) -> tuple[str, int | None]:
    port = free_port()
    swapped, count = re.subn(r"--port \d+", f"--port {port}", command)
    return (swapped, port) if count else (command, None)


def assert_pasted(shell: Shell, command: str) -> subprocess.CompletedProcess[str] | str:
    """Paste `command`: it succeeds, or says what is wrong (or, for `finoa doctor`, what it
    warns of) in at most two lines on stderr, with a non-zero exit code."""
    words = finoa_words(command)
    ready = next((r for w, r in SERVING.items() if words[: len(w)] == w), None)
    if ready is not None:
        swapped, port = with_free_port(command)
        output = shell.serve(swapped, ready, port)
        assert "Traceback" not in output and "error:" not in output, (command, output)
        return output
    result = shell.run(command)
    output = result.stdout + result.stderr
    assert "Traceback" not in output, (command, output)
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        first = lines[0] if lines else ""
        assert len(lines) <= 2 and first.startswith(("error: ", "warning: ")), (command, result)
        assert len(lines) == 1 or lines[1].startswith("fix: "), (command, result)
    return result


def test_every_command_of_the_readme_table_works_when_pasted(tmp_path: Path) -> None:
    examples = table_examples(README.read_text(encoding="utf-8"))
    assert len(examples) >= 15 and all(e.startswith("finoa ") for e in examples), examples
    shell = Shell.fresh(tmp_path / "newcomer", finoa_on_path=True)
    outcomes = {command: assert_pasted(shell, command) for command in examples}
    succeeded = [c for c, r in outcomes.items() if isinstance(r, str) or r.returncode == 0]
    # On a fresh folder most commands simply work (the first of them creates the database).
    assert "finoa demo --claims 20 --exit" in succeeded
    assert "finoa audit verify" in succeeded and "finoa db current" in succeeded

    # What the demo printed when it stopped: the offline commands, then serving its data
    # again and reading a claim meanwhile (both on a free port instead of 8700).
    demo = outcomes["finoa demo --claims 20 --exit"]
    assert isinstance(demo, subprocess.CompletedProcess)
    port = free_port()
    printed = [
        c.replace("--port 8700", f"--port {port}").replace(":8700/", f":{port}/")
        for c in printed_commands(demo.stdout)
    ]
    serve = next(c for c in printed if finoa_words(c) == ("serve",))
    curl = next(c for c in printed if c.startswith("curl "))
    for command in printed:
        if command not in (serve, curl):
            result = assert_pasted(shell, command)
            assert isinstance(result, subprocess.CompletedProcess) and result.returncode == 0

    def read_claim() -> None:
        answer = shell.run(curl)
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout)["id"] == curl.rsplit("/", 1)[1]

    assert "finoa serving on" in shell.serve(serve, "/health", port, read_claim)


@pytest.fixture
def serving_demo(tmp_path: Path) -> Iterator[tuple[Shell, str]]:
    """`finoa demo` (it keeps serving) started from a fresh folder, run the way `make demo`
    runs it: by the script's path, with no finoa on PATH. Yields the shell and its output
    once it serves; interrupted at the end, as Ctrl-C does."""
    shell = Shell.fresh(tmp_path / "demo-user", finoa_on_path=False)
    log = shell.cwd / "demo.out"
    with log.open("wb") as out:
        demo = subprocess.Popen(
            [str(BIN_DIR / "finoa"), "demo", "--claims", "12", "--port", "0"],
            cwd=shell.cwd,
            env=shell.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C to stop" not in log.read_text(errors="replace"):
            assert demo.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)  # polling the demo's output with a deadline
        yield shell, log.read_text()
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            demo.wait(60)
        except subprocess.TimeoutExpired:
            demo.kill()
            demo.wait(10)


def printed_commands(output: str) -> list[str]:
    """The commands under the demo's `What to try next` (indented by four spaces)."""
    after = output.split("What to try next", 1)[1]
    return [line[4:] for line in after.splitlines() if line.startswith("    ")]


def test_every_command_the_demo_prints_works_when_pasted(
    serving_demo: tuple[Shell, str],
) -> None:
    shell, output = serving_demo
    commands = printed_commands(output)
    words = [finoa_words(c) for c in commands]
    assert ("audit", "verify") in words and ("replay",) in words and ("token",) in words
    assert all("--data-dir finoa-data/demo" in c for c in commands), commands
    assert all(not c.startswith("finoa ") for c in commands)  # finoa is not on this PATH
    for command in commands:
        result = assert_pasted(shell, command)
        assert isinstance(result, subprocess.CompletedProcess)
        assert result.returncode == 0, (command, result.stderr)
    audit = next(c for c in commands if "audit verify" in c)
    assert "audit chain intact" in shell.run(audit).stdout
    curl = next(c for c in commands if c.startswith("curl "))
    claim_id = curl.rsplit("/", 1)[1]
    claim = json.loads(shell.run(curl).stdout)
    assert claim["id"] == claim_id and claim["status"] == "posted"
    assert re.search(r"documentation, while the hub serves: http://127\.0\.0\.1:\d+/docs", output)
    docs_url = re.findall(r"http://127\.0\.0\.1:\d+/docs", output)[-1]
    assert httpx.get(docs_url).status_code == 200
