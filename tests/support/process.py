"""Running the installed ``gaffer`` command: one-shot commands and a ``gaffer up`` process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GAFFER = str(Path(sys.executable).parent / "gaffer")


def gaffer_env(home: Path, **extra: str) -> dict[str, str]:
    """This process's env without gaffer settings, plus ``GAFFER_HOME`` and ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL") and not k.startswith("GAFFER_")
    }
    env["GAFFER_HOME"] = str(home)
    env.update(extra)
    return env


def gaffer(
    *args: str, env: Mapping[str, str], check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``gaffer args...``; with ``check``, fail the test on a non-zero exit."""
    proc = subprocess.run(
        [GAFFER, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"gaffer {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def gaffer_json(*args: str, env: Mapping[str, str]) -> Any:
    """Run ``gaffer args... --json`` and parse its output."""
    return json.loads(gaffer(*args, "--json", env=env).stdout)


class GafferUp:
    """``gaffer up --port 0`` as a real process; ``url`` once it is ready."""

    def __init__(self, env: Mapping[str, str], *args: str) -> None:
        self.ready_file = Path(env["GAFFER_HOME"]) / f"ready-{time.monotonic_ns()}"
        Path(env["GAFFER_HOME"]).mkdir(parents=True, exist_ok=True)
        self.log = open(Path(env["GAFFER_HOME"]) / "up.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            [GAFFER, "up", "--port", "0", "--ready-file", str(self.ready_file), *args],
            env=dict(env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while not (self.ready_file.exists() and self.ready_file.read_text().endswith("\n")):
            if self.process.poll() is not None:
                raise AssertionError(f"gaffer up exited {self.process.returncode}")
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("gaffer up did not become ready")
            time.sleep(0.05)
        self.url = self.ready_file.read_text().strip()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.log.close()
        return code

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(30)
        self.log.close()
