"""The embedded default: a private ``redis-server`` on a unix socket in the data directory.

With no ``REDIS_URL``, the first gaffer process to need Redis starts one and stops it on exit;
other gaffer processes on the same data directory (the CLI next to ``gaffer up``) find the
socket answering and use it without owning it. The server is started with
``PR_SET_PDEATHSIG`` so that it dies with its owner even when the owner is killed with SIGKILL:
no process is left behind. It keeps an append-only file in ``$GAFFER_HOME/redis`` so that
delivery claims and queued jobs survive a restart.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from gaffer.errors import UserError
from gaffer.settings import Settings

PR_SET_PDEATHSIG = 1
START_TIMEOUT_S = 10.0


class RedisServerMissingError(UserError, RuntimeError):
    """``redis-server`` is not installed and no ``REDIS_URL`` was given."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def socket_url(socket_path: Path) -> str:
    """The redis-py URL of a unix socket."""
    return f"unix://{socket_path}"


def _answers(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class EmbeddedRedis:
    """Starts (or joins) the private Redis server of a data directory.

    Use as a context manager; ``url`` is the redis-py URL to connect with. Raises
    :class:`RedisServerMissingError` when the server must be started and ``redis-server`` is
    not on PATH.
    """

    def __init__(self, settings: Settings) -> None:
        self.socket_path = settings.redis_socket_path
        self.directory = self.socket_path.parent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``unix://`` URL of the server."""
        return socket_url(self.socket_path)

    @property
    def owned(self) -> bool:
        """True when this object started the server (and will stop it)."""
        return self.process is not None

    def start(self) -> str:
        """Join the running server or start one; returns :attr:`url`."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _answers(self.socket_path):
                return self.url
            binary = shutil.which("redis-server")
            if binary is None:
                raise RedisServerMissingError(
                    "redis-server not found: install it (apt-get install -y redis-server) "
                    "or set REDIS_URL"
                )
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
            log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - owned by the child
            self.process = subprocess.Popen(
                [
                    binary,
                    "--port",
                    "0",
                    "--unixsocket",
                    str(self.socket_path),
                    "--unixsocketperm",
                    "700",
                    "--dir",
                    str(self.directory),
                    "--save",
                    "",
                    "--appendonly",
                    "yes",
                    "--appendfsync",
                    "everysec",
                    "--maxmemory-policy",
                    "noeviction",
                    "--daemonize",
                    "no",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
            log.close()
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _answers(self.socket_path):
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"redis-server exited with {self.process.returncode}; "
                        f"see {self.directory / 'redis.log'}"
                    )
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer within {START_TIMEOUT_S}s")
                time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Stop the server if this object started it (SIGTERM flushes the append-only file)."""
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
