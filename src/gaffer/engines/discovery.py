"""Finding an engine's CLI: on ``PATH`` (the worker's), or at a path set for the engine.

The ``local`` backend puts ``$GAFFER_ENGINES_DIR/bin`` (where ``scripts/install-engines``
installs the pinned CLIs) first on the worker's ``PATH``; the worker image has them in
``/opt/gaffer-engines/bin``. An engine's settings may name the executable instead
(``{"path": "/usr/local/bin/claude"}``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from gaffer.engines.base import EngineError

VERSION_TIMEOUT_S = 20.0
"""How long ``<cli> --version`` may take (a Node CLI's first start reads its whole bundle)."""


def find_cli(cli: str, explicit: str | None = None, *, path: str | None = None) -> str:
    """The executable to run for ``cli`` (``claude``, ``codex``, ...): ``explicit`` when given
    (it must exist and be executable), else the first ``cli`` on ``path`` (default: this
    process's ``PATH``). Raises :class:`EngineError` saying where it looked."""
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise EngineError(f"{cli}: the configured path {explicit} is not an executable file")
    found = shutil.which(cli, path=path)
    if found is None:
        where = path if path is not None else os.environ.get("PATH", "")
        raise EngineError(f"{cli} is not installed (not found on PATH={where})")
    return found


def cli_version(executable: str, args: tuple[str, ...] = ("--version",)) -> str | None:
    """The first line ``executable --version`` prints, or None when it fails."""
    try:
        proc = subprocess.run(
            [executable, *args],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT_S,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0].strip() if proc.returncode == 0 and lines else None
