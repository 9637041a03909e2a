"""Run the `finoa` command line as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def finoa(
    *args: str, data_dir: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m finoa ARGS` with FINOA_DATA_DIR=`data_dir`, run from its parent folder."""
    full_env = {**os.environ, "FINOA_DATA_DIR": str(data_dir), **(env or {})}
    full_env.pop("FINOA_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "finoa", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=data_dir.parent,
    )
