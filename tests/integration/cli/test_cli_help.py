"""Help and shell completion: every command shows one example; completion installs for bash
and zsh and then completes `finoa` commands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import typer
from support.cli import finoa

from finoa.cli import app


def leaf_commands() -> list[tuple[str, Any]]:
    """Every command that runs something (not a group), by its full path."""
    found: list[tuple[str, Any]] = []

    def walk(path: str, command: Any) -> None:
        if hasattr(command, "commands"):  # a group
            for name, sub in command.commands.items():
                walk(f"{path} {name}", sub)
        else:
            found.append((path, command))

    walk("finoa", typer.main.get_command(app))
    return found


def example_command(epilog: str | None) -> str:
    """The example's command line, after any environment it needs (`KEY=value finoa …`)."""
    return re.sub(r"^Example: (?:[A-Z][A-Z0-9_]*=\S+ )*", "", epilog or "")


def test_every_command_has_one_example_epilog() -> None:
    commands = leaf_commands()
    assert len(commands) >= 15
    missing = [
        path for path, command in commands if not example_command(command.epilog).startswith(path)
    ]
    assert not missing, f"commands without `epilog='Example: {{the command}} …'`: {missing}"
    for path, command in commands:
        assert (command.epilog or "").count("Example:") == 1, path


def test_help_shows_the_example(tmp_path: Path) -> None:
    result = finoa("periods", "close", "--help", data_dir=tmp_path / "data")
    assert result.returncode == 0
    assert "Example: finoa periods close 2026-01" in result.stdout


def run_in_shell(
    shell: Path, script: str, home: Path, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`shell -c script` with HOME=`home` and the installed `finoa` first on PATH."""
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        **(extra_env or {}),
    }
    env.pop("_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION", None)
    return subprocess.run(
        [str(shell), "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def test_install_completion_for_bash_writes_a_script_that_completes(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # `; true` keeps bash alive as finoa's parent, where the shell is detected.
    installed = run_in_shell(Path("/bin/bash"), "finoa --install-completion; true", home)
    assert "bash completion installed" in installed.stdout, installed.stdout + installed.stderr
    script = home / ".bash_completions" / "finoa.sh"
    assert "complete -o default -F _finoa_completion finoa" in script.read_text()
    assert f"source '{script}'" in (home / ".bashrc").read_text()
    completed = run_in_shell(
        Path("/bin/bash"),
        "source ~/.bashrc; COMP_WORDS=(finoa aud); COMP_CWORD=1; _finoa_completion finoa; "
        'echo "${COMPREPLY[@]}"; COMP_WORDS=(finoa periods c); COMP_CWORD=2; '
        '_finoa_completion finoa; echo "${COMPREPLY[@]}"',
        home,
    )
    assert completed.stdout.splitlines() == ["audit", "close"], completed.stderr


def test_install_completion_for_zsh_writes_the_compdef_and_fpath(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    # finoa recognises the shell it runs in by the name of its parent process: a shell
    # started under the name `zsh`.
    zsh = tmp_path / "bin" / "zsh"
    zsh.parent.mkdir()
    zsh.symlink_to("/bin/bash")
    installed = run_in_shell(zsh, "finoa --install-completion; true", home)
    assert "zsh completion installed" in installed.stdout, installed.stdout + installed.stderr
    script = (home / ".zfunc" / "_finoa").read_text()
    assert script.startswith("#compdef finoa")
    assert "_FINOA_COMPLETE=complete_zsh" in script
    zshrc = (home / ".zshrc").read_text()
    assert "fpath+=~/.zfunc" in zshrc and "compinit" in zshrc
    # What the zsh script asks finoa for, and finoa's answer in zsh's format.
    answer = run_in_shell(
        Path("/bin/bash"),
        "finoa",
        home,
        {"_FINOA_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "finoa periods "},
    )
    assert '"close":"Close a period' in answer.stdout, answer.stdout + answer.stderr
    assert '"list":' in answer.stdout
