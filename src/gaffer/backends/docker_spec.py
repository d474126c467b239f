"""What a worker container looks like: its name, labels, limits, mounts and command.

Pure functions (no engine calls), used by :mod:`gaffer.backends.docker`:

* name ``gaffer-worker-<job id>`` (the BullMQ job id is the run id, so one run has at most one
  container at a time, and a leftover of an earlier attempt is found by name);
* labels ``gaffer.managed=true``, ``gaffer.instance``, ``gaffer.run.id``, ``gaffer.job.id``,
  ``gaffer.project.id``, ``gaffer.agent.type``: the orphan sweep lists containers by the first
  two, and never touches those of another installation sharing the engine;
* limits: memory with swap equal to it (so no swap), a pids limit, a CPU quota;
  ``no-new-privileges``; every capability dropped but :data:`WORKER_CAPABILITIES`; the
  configured network; ``init`` (a tiny init as PID 1 forwards
  SIGTERM to the worker and reaps orphaned processes: a PID 1 without a SIGTERM handler ignores
  SIGTERM, and every stop would wait out the whole grace period);
* mounts: a clone URL that is a local path (a git repository on the dispatcher's host, as in the
  demo and the tests) is bind-mounted read-write at the same path, so the worker clones and
  pushes the same path; the dispatcher's Redis socket is bind-mounted read-only at
  :data:`REDIS_SOCKET`, for job-data offload.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from docker.types import Mount

from gaffer.errors import UserError
from gaffer.queue.jobs import JobData
from gaffer.settings import Settings

CONTAINER_PREFIX = "gaffer-worker-"
LABEL_MANAGED = "gaffer.managed"
LABEL_INSTANCE = "gaffer.instance"
LABEL_RUN = "gaffer.run.id"
LABEL_JOB = "gaffer.job.id"
LABEL_PROJECT = "gaffer.project.id"
LABEL_AGENT = "gaffer.agent.type"
WORKSPACE = "/workspace"
"""The worker's working directory in the container (the image's ``WORKDIR``)."""
REDIS_SOCKET = "/run/gaffer/redis.sock"
"""Where a unix-socket Redis of the dispatcher appears inside a worker container."""
WORKER_COMMAND = ("python", "-m", "gaffer.worker")
MIB = 1024 * 1024


class RedisUnreachableError(UserError, ValueError):
    """The dispatcher's Redis is at an address worker containers cannot reach."""


@dataclass(frozen=True)
class RedisAccess:
    """How a worker container reaches the dispatcher's Redis: ``url`` as the worker sees it,
    and ``socket``, the host's unix socket to bind-mount at :data:`REDIS_SOCKET` (or None)."""

    url: str
    socket: Path | None = None


def container_name(job_id: str) -> str:
    """``gaffer-worker-<job id>``."""
    return CONTAINER_PREFIX + job_id


def managed_filters(instance: str) -> dict[str, list[str]]:
    """The engine's container filter for every worker container of this installation."""
    return {"label": [f"{LABEL_MANAGED}=true", f"{LABEL_INSTANCE}={instance}"]}


def worker_labels(job: JobData, instance: str) -> dict[str, str]:
    """The labels of ``job``'s container (see the module docstring)."""
    return {
        LABEL_MANAGED: "true",
        LABEL_INSTANCE: instance,
        LABEL_RUN: job.run_id,
        LABEL_JOB: job.run_id,
        LABEL_PROJECT: job.project_id,
        LABEL_AGENT: job.agent_type,
    }


def local_repository(clone_url: str) -> Path | None:
    """The directory of a clone URL that names a git repository on this host, else None.

    Accepted: an absolute path or a ``file://`` URL of a bare repository (``HEAD`` and
    ``objects/``) or of a working tree (``.git``). Anything else (a network URL, a missing
    path, a directory that is no repository) is None and is not mounted: the worker's clone then
    fails with git's own message.
    """
    if clone_url.startswith("file://"):
        path = Path(urlsplit(clone_url).path)
    elif clone_url.startswith("/"):
        path = Path(clone_url)
    else:
        return None
    path = path.resolve()
    is_bare = (path / "HEAD").is_file() and (path / "objects").is_dir()
    if is_bare or (path / ".git").exists():
        return path
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def worker_redis_access(redis_url: str, network: str) -> RedisAccess:
    """How a container on ``network`` reaches the Redis at ``redis_url`` (the dispatcher's).

    * ``unix://`` URLs: the socket is bind-mounted at :data:`REDIS_SOCKET`; the worker's URL
      keeps the query (``?db=N``).
    * TCP URLs on a loopback address (``127.0.0.0/8``, ``::1``, ``localhost``): a container's
      loopback is its own, so they only work with ``network == "host"``; with any other network
      :class:`RedisUnreachableError` is raised, when the backend is built, rather than letting
      every run whose job data is offloaded fail later.
    * Any other URL is handed over as it is.
    """
    parts = urlsplit(redis_url)
    if parts.scheme == "unix":
        socket = Path(parts.path)
        query = f"?{parts.query}" if parts.query else ""
        return RedisAccess(f"unix://{REDIS_SOCKET}{query}", socket)
    if parts.hostname and _is_loopback(parts.hostname) and network != "host":
        raise RedisUnreachableError(
            f"REDIS_URL points at {parts.hostname}, which worker containers on network "
            f"{network!r} cannot reach (their loopback is their own): use a unix socket URL "
            "(it is mounted into each worker), an address the containers can route to, or "
            "GAFFER_WORKER_NETWORK=host"
        )
    return RedisAccess(redis_url)


def worker_mounts(job: JobData, redis: RedisAccess) -> list[Mount]:
    """The bind mounts of ``job``'s container (see the module docstring)."""
    mounts = []
    repository = local_repository(job.repository.clone_url)
    if repository is not None:
        mounts.append(Mount(str(repository), str(repository), type="bind", read_only=False))
    if redis.socket is not None:
        mounts.append(Mount(REDIS_SOCKET, str(redis.socket), type="bind", read_only=True))
    return mounts


WORKER_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID")
"""The capabilities a worker container keeps (the rest are dropped): the worker, root, hands
the engine a home and a clone of its own (CHOWN, FOWNER), reads what the engine wrote whatever
its modes (DAC_OVERRIDE), starts the engine as another user (SETUID, SETGID) and signals its
processes (KILL). The engine, an unprivileged user under ``no-new-privileges``, holds none of
them; what the engine's default set would add (raw sockets, ``mknod``, ``chroot``, binding
low ports, file capabilities) no process in the container gets."""


def create_options(
    job: JobData, env: dict[str, str], image: str, settings: Settings, redis: RedisAccess
) -> dict[str, Any]:
    """Keyword arguments of ``DockerClient.containers.create`` for ``job``'s worker.

    ``env`` is used exactly as given (it comes from the one worker env builder).
    """
    memory = settings.worker_memory_mb * MIB
    return {
        "image": image,
        "command": list(WORKER_COMMAND),
        "name": container_name(job.run_id),
        "labels": worker_labels(job, settings.instance),
        "environment": env,
        "working_dir": WORKSPACE,
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": settings.worker_pids_limit,
        "nano_cpus": round(settings.worker_cpus * 1e9),
        "security_opt": ["no-new-privileges"],
        "cap_drop": ["ALL"],
        "cap_add": list(WORKER_CAPABILITIES),
        "network_mode": settings.worker_network,
        "mounts": worker_mounts(job, redis),
        "init": True,
        "stdin_open": False,
        "tty": False,
        "detach": True,
    }
