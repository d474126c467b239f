"""The worker image of a run: present locally, or pulled once; never a retry storm.

Policy (the issue "Container workers through the Docker Engine API"): pull when missing. A
missing image that cannot be pulled fails the run before any container is created, with the
engine's reason, as SYSTEM_FAILURE (the run's code never ran; this is set-up, not the agent) and
without the queue's retries (:class:`~gaffer.backends.base.PermanentStartError`): a retry a few
seconds later would fail the same way. After a failed pull, runs that need the same image within
:data:`PULL_FAILURE_TTL_S` fail at once with the same reason instead of pulling again, so a
burst of queued runs costs one pull, not one each; an image that appears meanwhile (built
locally, say) is used at once, since presence is checked first. Concurrent runs that need the
same missing image share one pull.

Private registries (issue 13): a run of a project whose verified digest must be pulled (it is
absent from this engine: another dispatcher's engine validated it, or it was pruned) pulls with
the project's registry credentials. :meth:`WorkerImages.ensure` takes them as a loader called
only when a pull is needed; they go to the engine in the pull's ``X-Registry-Auth`` header and
nowhere else (never to a container's env, labels or command). A failed pull is remembered per
``(reference, scope)`` (the scope is the project whose credentials were used), so one project's
missing credentials do not fail another project's runs of the same digest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import docker
import structlog
from docker.errors import APIError, DockerException, ImageNotFound
from requests.exceptions import RequestException

from gaffer.aio import in_thread
from gaffer.backends.base import BackendError, PermanentStartError

log = structlog.get_logger(__name__)

PULL_FAILURE_TTL_S = 30.0
"""How long a failed pull of an image is remembered (runs fail at once meanwhile)."""


@dataclass(frozen=True)
class _Failure:
    reason: str
    at: float


RegistryAuthLoader = Callable[[], Mapping[str, str] | None]
"""Returns the registry's ``{"username", "password"}`` (or None); called on a thread, only when
a pull is needed (it may read the database and decrypt)."""


class ImageUnavailableError(PermanentStartError):
    """The worker image is neither present nor pullable; the message has the engine's reason."""


class WorkerImages:
    """Finds or pulls worker images through one Docker client (see the module docstring).

    ``clock`` is a monotonic clock in seconds (replaceable in tests of the failure memory).
    """

    def __init__(
        self,
        client: docker.DockerClient,
        *,
        failure_ttl_s: float = PULL_FAILURE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.failure_ttl_s = failure_ttl_s
        self.clock = clock
        self._failures: dict[tuple[str, str], _Failure] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def ensure(
        self, reference: str, *, auth: RegistryAuthLoader | None = None, scope: str = ""
    ) -> str:
        """The id (``sha256:...``) of image ``reference``, pulled first if it is missing.

        ``auth`` loads the registry credentials for that pull (not called when the image is
        present); ``scope`` names whose they are (a project id; ``""`` for none), keying the
        failure memory.

        Raises :class:`ImageUnavailableError` when it is missing and the pull fails (or failed
        less than ``failure_ttl_s`` ago), :class:`BackendError` when the engine cannot be
        reached.
        """
        image_id = await self._present(reference)
        if image_id is not None:
            return image_id
        lock = self._locks.setdefault(reference, asyncio.Lock())
        async with lock:
            image_id = await self._present(reference)
            if image_id is not None:
                return image_id
            failure = self._failures.get((reference, scope))
            if failure is not None and self.clock() - failure.at < self.failure_ttl_s:
                ago = self.clock() - failure.at
                raise ImageUnavailableError(f"{failure.reason} (pull failed {ago:.0f} s ago)")
            log.info("worker_image_pulling", image=reference, scope=scope or None)
            error = await in_thread(lambda: self._pull(reference, auth), name="gaffer-docker-pull")
            if error is None:
                image_id = await self._present(reference)
            if image_id is None:
                detail = error or "the pull gave no image"
                reason = f"worker image {reference} is not available: {detail}"
                self._failures[(reference, scope)] = _Failure(reason, self.clock())
                log.error("worker_image_unavailable", image=reference, reason=reason)
                raise ImageUnavailableError(reason)
            self._failures.pop((reference, scope), None)
            log.info("worker_image_pulled", image=reference, image_id=image_id)
            return image_id

    async def _present(self, reference: str) -> str | None:
        def inspect() -> str | None:
            try:
                return str(self.client.images.get(reference).id)
            except ImageNotFound:
                return None

        try:
            return await in_thread(inspect, name="gaffer-docker-inspect")
        except (DockerException, RequestException) as exc:
            raise BackendError(f"cannot inspect the worker image {reference}: {exc}") from exc

    def _pull(self, reference: str, auth: RegistryAuthLoader | None) -> str | None:
        """Pull on this thread (with the credentials ``auth`` loads, if any); returns the
        engine's error message, or None on success."""
        try:
            credentials = auth() if auth is not None else None
            auth_config = dict(credentials) if credentials else None
            for event in self.client.api.pull(
                reference, stream=True, decode=True, auth_config=auth_config
            ):
                if isinstance(event, dict) and event.get("error"):
                    return str(event["error"])
        except APIError as exc:
            return str(exc.explanation or exc)
        except (DockerException, RequestException) as exc:
            return str(exc)
        return None
