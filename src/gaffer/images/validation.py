"""The validation of a worker image: pull once, inspect, pin the digest, smoke-test it.

:meth:`ImageValidator.validate` (synchronous: call it on a thread) does, for one reference:

1. **pull** it once through the Docker Engine API (with the project's registry credentials,
   when set; they go to the engine in the pull's ``X-Registry-Auth`` header only, never to a
   container). A pull that fails fails the validation with the engine's reason, except when
   the image is present locally with no registry digest: then the reason says it was built
   locally and never pushed.
2. **inspect** it: the launchable reference is the ``RepoDigests`` entry whose repository is the
   pulled one (``127.0.0.1:5000/team/worker@sha256:...``); an image without one fails ("no
   registry digest").
3. **smoke-test** that digest in a one-shot container (no network, no gaffer labels, removed in
   every path) running :func:`gaffer.images.smoke.smoke_script`; the first failing check's label
   is the reason; a test running past ``smoke_timeout_s`` is stopped and its container removed.

Every outcome but "the engine cannot be reached" is a :class:`ValidationResult` (verified or
failed: no project stays ``pending``); an unreachable engine raises
:class:`~gaffer.backends.docker.EngineUnreachableError`, and the caller retries later.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

import docker
import structlog
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from requests.exceptions import ConnectionError as RequestsConnectionError
from requests.exceptions import ReadTimeout, RequestException

from gaffer.backends.docker import EngineUnreachableError
from gaffer.images.smoke import image_checks, parse_output, smoke_script
from gaffer.images.state import ValidationResult
from gaffer.images.validator import ImageReference, parse_image_reference

log = structlog.get_logger(__name__)

SMOKE_TIMEOUT_S = 120.0
"""How long the smoke test may run before it is stopped (seconds)."""
SMOKE_LABEL = "gaffer.image-validation"
"""The label of a smoke-test container (not ``gaffer.managed``: the orphan sweep leaves it)."""
REASON_MAX_CHARS = 2000


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_MAX_CHARS else text[: REASON_MAX_CHARS - 1] + "…"


def _same_repository(candidate: str, wanted: ImageReference) -> bool:
    """True when ``candidate`` (a RepoDigests name) is the pulled repository: the same name,
    or the same with the engine's default registry spelled out (``docker.io/library/x``)."""
    if candidate == wanted.name:
        return True
    if wanted.registry is None:
        path = wanted.repository if "/" in wanted.repository else f"library/{wanted.repository}"
        return candidate in (f"docker.io/{path}", f"docker.io/{wanted.repository}")
    return False


def launchable_digests(repo_digests: Iterable[str], wanted: ImageReference) -> list[str]:
    """The ``repo@sha256:...`` entries of ``repo_digests`` matching ``wanted``'s repository (the
    one pulled), in order, without duplicates. A digest written in ``wanted`` must be the one
    found. Docker gives one per repository; Podman lists every manifest digest the image has
    (the local one too) under every name, so there may be several."""
    found: list[str] = []
    for entry in repo_digests:
        name, _, digest = entry.partition("@")
        if not digest or not _same_repository(name, wanted):
            continue
        if wanted.digest is not None and digest != wanted.digest:
            continue
        pinned = f"{wanted.name}@{digest}"
        if pinned not in found:
            found.append(pinned)
    return found


class ImageValidator:
    """Validates worker images through one Docker client (see the module docstring).

    ``docker_host`` is the engine's URL (``unix:///run/podman.sock``); ``smoke_timeout_s``
    bounds the smoke test (seconds).
    """

    def __init__(self, docker_host: str, *, smoke_timeout_s: float = SMOKE_TIMEOUT_S) -> None:
        self.docker_host = docker_host
        self.smoke_timeout_s = smoke_timeout_s
        self.client = docker.DockerClient(base_url=docker_host, version="1.41", timeout=60)

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def validate(
        self,
        reference: str,
        engine_clis: Iterable[tuple[str, str]] = (),
        auth: Mapping[str, str] | None = None,
    ) -> ValidationResult:
        """Validate ``reference`` (see the module docstring). ``engine_clis`` are ``(engine,
        executable)`` pairs to check; ``auth`` the registry's ``{"username", "password"}``.

        Raises :class:`EngineUnreachableError` when the engine does not answer (retry later).
        """
        try:
            wanted = parse_image_reference(reference)
        except ValueError as exc:
            return ValidationResult(reference, error=str(exc))
        self._ping()
        log.info("worker_image_validating", image=reference)
        pull_error = self._pull(reference, auth)
        repo_digests = self._repo_digests(reference)
        if repo_digests is None:
            return self._failed(reference, f"pull failed: {pull_error or 'no image after pull'}")
        if pull_error:
            return self._failed(
                reference,
                f"pull failed: {pull_error}; the copy of {reference} here has no registry digest "
                "the registry confirmed (built locally and never pushed to a registry?)",
            )
        digest = self._registry_digest(launchable_digests(repo_digests, wanted), auth)
        if digest is None:
            return self._failed(
                reference,
                f"image {reference} has no registry digest for {wanted.name} (built locally and "
                "never pushed to a registry?); push it and set the registry's reference",
            )
        error = self._smoke(digest, engine_clis)
        if error is not None:
            return self._failed(reference, error)
        log.info("worker_image_verified", image=reference, digest=digest)
        return ValidationResult(reference, digest=digest)

    def _failed(self, reference: str, reason: str) -> ValidationResult:
        reason = _short(reason)
        log.warning("worker_image_failed", image=reference, reason=reason)
        return ValidationResult(reference, error=reason)

    def _ping(self) -> None:
        try:
            self.client.ping()
        except (DockerException, RequestException) as exc:
            raise EngineUnreachableError(
                f"cannot reach the container engine at {self.docker_host}: {exc}"
            ) from exc

    def _pull(self, reference: str, auth: Mapping[str, str] | None) -> str | None:
        """Pull ``reference``; the engine's error message, or None on success."""
        try:
            for event in self.client.api.pull(
                reference, stream=True, decode=True, auth_config=dict(auth) if auth else None
            ):
                if isinstance(event, dict) and event.get("error"):
                    return str(event["error"])
        except (RequestsConnectionError, ReadTimeout) as exc:
            self._ping()  # the engine itself gone: retried; else the pull's own failure
            return str(exc)
        except APIError as exc:
            return str(exc.explanation or exc)
        except DockerException as exc:
            return str(exc)
        return None

    def _registry_digest(self, candidates: list[str], auth: Mapping[str, str] | None) -> str | None:
        """The candidate the registry serves: the only one, or the first whose pull by digest
        succeeds (the others are digests of local copies the registry never had)."""
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        for candidate in candidates:
            if self._pull(candidate, auth) is None:
                return candidate
        return None

    def _repo_digests(self, reference: str) -> list[str] | None:
        """The image's ``RepoDigests`` (None: no such image here)."""
        try:
            attrs = self.client.api.inspect_image(reference)  # type: ignore[no-untyped-call]
        except (ImageNotFound, NotFound):
            return None
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise EngineUnreachableError(f"inspecting {reference}: {exc}") from exc
        return [str(d) for d in attrs.get("RepoDigests") or []]

    def _smoke(self, digest: str, engine_clis: Iterable[tuple[str, str]]) -> str | None:
        """Run the smoke test of ``digest``: None when every check passed, else the reason."""
        script = smoke_script(image_checks(engine_clis))
        name = f"gaffer-image-check-{uuid.uuid4().hex[:12]}"
        try:
            container = self.client.containers.create(
                digest,
                entrypoint=["/bin/sh", "-c"],
                command=[script],
                name=name,
                labels={SMOKE_LABEL: "true"},
                network_mode="none",
                environment={"LANG": "C.UTF-8"},
            )
        except APIError as exc:
            return f"smoke test could not be created: {exc.explanation or exc}"
        try:
            try:
                container.start()
            except APIError as exc:
                return f"smoke test could not start (no /bin/sh?): {exc.explanation or exc}"
            try:
                status = container.wait(timeout=self.smoke_timeout_s)
            except (ReadTimeout, RequestsConnectionError):
                log.warning("worker_image_smoke_timeout", image=digest, container=name)
                return f"smoke test timed out after {self.smoke_timeout_s:g} s"
            output = container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
            exit_code = int(status.get("StatusCode", -1))
        finally:
            try:
                container.remove(force=True)
            except (APIError, RequestException) as exc:
                log.error("worker_image_smoke_remove_failed", container=name, error=str(exc))
        outcome = parse_output(output)
        if outcome.failed_label is not None:
            detail = f" ({outcome.detail})" if outcome.detail else ""
            return f"smoke test check failed: {outcome.failed_label}{detail}"
        if exit_code != 0 or not outcome.complete:
            tail = _short(output[-300:]) or "no output"
            return f"smoke test exited {exit_code} before finishing: {tail}"
        return None
