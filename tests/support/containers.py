"""A real container engine for the tests: Podman's Docker-compatible API on a private socket.

``scripts/test`` installs Podman and writes its config (``scripts/containers-setup``); the
session fixture builds the worker image (``scripts/build-images``, a no-op when it is up to date)
and starts ``podman system service`` on a socket in a temporary directory. Each test gets its
own ``gaffer.instance`` label value, so what it finds through the API is its own.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import docker

from gaffer.backends.docker_spec import managed_filters

ROOT = Path(__file__).resolve().parents[2]
WORKER_IMAGE = "localhost/gaffer-worker:latest"


def build_worker_image() -> None:
    """Build (or confirm up to date) the worker image from this checkout."""
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-images")], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/build-images failed:\n{proc.stdout}\n{proc.stderr}")


class PodmanService:
    """``podman system service`` on a unix socket of its own; ``url`` is its DOCKER_HOST."""

    def __init__(self) -> None:
        if shutil.which("podman") is None:
            raise RuntimeError("podman is not installed: run scripts/test, which installs it")
        self.dir = Path(tempfile.mkdtemp(prefix="gaffer-test-podman-"))
        self.socket = self.dir / "podman.sock"
        self.log = open(self.dir / "service.log", "ab")  # noqa: SIM115
        self.client = docker.DockerClient(base_url=self.url, version="1.41", timeout=60)
        self._start()

    def _start(self) -> None:
        # Its own directory as cwd: conmon, which it starts per container, drops an "oom" file
        # in its cwd when the kernel's OOM killer strikes in that container.
        self.process = subprocess.Popen(
            ["podman", "system", "service", "--time=0", self.url],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=self.dir,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.client.ping():
                    break
            except Exception:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"podman service did not start; see {self.dir}/service.log")
            time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def managed(self, instance: str) -> list[dict[str, Any]]:
        """Every container (running or not) labelled as a worker of ``instance``."""
        return list(self.client.api.containers(all=True, filters=managed_filters(instance)))

    def remove_all(self, instance: str) -> None:
        for item in self.managed(instance):
            self.client.api.remove_container(item["Id"], force=True)

    def created_since(self, instance: str, since: float) -> list[dict[str, Any]]:
        """The engine's ``create`` events of ``instance``'s containers since ``since`` (s)."""
        events = self.client.events(
            since=int(since) - 1,
            until=int(time.time()) + 1,
            filters={"event": "create", "label": f"gaffer.instance={instance}"},
            decode=True,
        )
        return list(events)

    def _stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def restart(self, down_s: float) -> None:
        """Stop the API service, wait ``down_s`` seconds, start it again on the same socket
        (containers run on meanwhile: their monitor is not the service)."""
        self._stop()
        time.sleep(down_s)
        self._start()

    def close(self) -> None:
        self.client.close()
        self._stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def new_instance() -> str:
    """A fresh ``gaffer.instance`` value for one test."""
    return f"test-{uuid.uuid4().hex[:12]}"
