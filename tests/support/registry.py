"""A real local registry for the worker-image tests: ``docker-registry serve`` on a free
loopback port with a temporary storage dir, optionally with htpasswd auth.

Podman refuses plain HTTP unless the registry is marked insecure, so :class:`LocalRegistry`
writes a drop-in in ``/etc/containers/registries.conf.d/`` (removed on close); a Podman API
service reads it when it starts, so start the service after the registry
(:func:`podman_after`). ``scripts/registry-setup`` installs what this needs.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from tests.support.containers import ROOT

DROP_IN_DIR = Path("/etc/containers/registries.conf.d")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ensure_tools() -> None:
    """Install docker-registry, htpasswd and busybox when missing (scripts/registry-setup)."""
    if (
        shutil.which("docker-registry")
        and shutil.which("htpasswd")
        and Path("/bin/busybox").exists()
    ):
        return
    subprocess.run([str(ROOT / "scripts" / "registry-setup")], check=True)


class LocalRegistry:
    """A registry at ``host`` (``127.0.0.1:<port>``); ``user``/``password`` when ``auth``."""

    def __init__(self, *, auth: bool = False) -> None:
        ensure_tools()
        self.dir = Path(tempfile.mkdtemp(prefix="gaffer-test-registry-"))
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.user, self.password = ("gaffer-puller", "s3cret-pull-pw") if auth else (None, None)
        auth_conf = ""
        if auth:
            htpasswd = self.dir / "htpasswd"
            subprocess.run(
                ["htpasswd", "-Bbc", str(htpasswd), str(self.user), str(self.password)],
                check=True,
                capture_output=True,
            )
            auth_conf = f"auth:\n  htpasswd:\n    realm: gaffer-test\n    path: {htpasswd}\n"
        config = self.dir / "config.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.dir / 'storage'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.host}\n"
            f"{auth_conf}"
        )
        self.log = open(self.dir / "registry.log", "ab")  # noqa: SIM115
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        self.drop_in = DROP_IN_DIR / f"gaffer-test-registry-{self.port}.conf"
        DROP_IN_DIR.mkdir(parents=True, exist_ok=True)
        self.drop_in.write_text(f'[[registry]]\nlocation = "{self.host}"\ninsecure = true\n')
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"http://{self.host}/v2/", timeout=2).status_code in (200, 401):
                    break
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"docker-registry did not start; see {self.dir}/registry.log")
            time.sleep(0.05)

    def push(self, local: str, remote: str) -> str:
        """Push image ``local`` as ``<host>/<remote>``; the manifest digest (``sha256:...``)."""
        digest_file = self.dir / "digest"
        command = ["podman", "push", "--tls-verify=false", "--digestfile", str(digest_file)]
        if self.user:
            command += ["--creds", f"{self.user}:{self.password}"]
        subprocess.run([*command, local, f"{self.host}/{remote}"], check=True, capture_output=True)
        return digest_file.read_text().strip()

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.drop_in.unlink(missing_ok=True)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def busybox_image(tag: str, tools: dict[str, str], workdir: Path) -> str:
    """Import a busybox image ``localhost/gaffer-test-<tag>`` with ``/bin/sh`` and, for each
    ``tools`` entry, an executable ``/usr/bin/<name>`` with that shell body (a fake
    ``python`` that prints a version, say): no real Python, git or engine CLI."""
    root = workdir / f"rootfs-{tag}"
    (root / "bin").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "echo", "cat", "sleep", "true", "printf", "env"):
        (root / "bin" / applet).symlink_to("busybox")
    for name, body in tools.items():
        path = root / "usr" / "bin" / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    name = f"localhost/gaffer-test-{tag}:latest"
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(
        ["podman", "import", "--change", "ENV PATH=/usr/bin:/bin", "-", name],
        stdin=tar.stdout,
        check=True,
        capture_output=True,
    )
    tar.wait()
    return name
