"""Snapshot images through the container engine's API: commit, inspect, list by label, delete.

Labels of a snapshot image: ``gaffer.snapshot=true``, ``gaffer.snapshot.instance``,
``gaffer.snapshot.project``, ``gaffer.snapshot.work-item``, ``gaffer.snapshot.kind``,
``gaffer.snapshot.key``. A commit also empties every environment variable the container had
beyond the base image's (the job, the API key, the Redis URL...): a container's env is part of
the image it is committed to, and Podman's commit ignores a replacement config, so each
variable is set to ``""`` with an ``ENV`` change (the worker treats empty as unset). The
container's own labels (its run's ids) are emptied the same way.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import docker
from docker.errors import ImageNotFound, NotFound

from gaffer.aio import in_thread
from gaffer.backends.base import BackendError
from gaffer.backends.docker_spec import WORKER_COMMAND, WORKSPACE

LIST_TRIES = 5
LABEL_SNAPSHOT = "gaffer.snapshot"
LABEL_INSTANCE = "gaffer.snapshot.instance"
LABEL_PROJECT = "gaffer.snapshot.project"
LABEL_WORK_ITEM = "gaffer.snapshot.work-item"
LABEL_KIND = "gaffer.snapshot.kind"
LABEL_KEY = "gaffer.snapshot.key"


@dataclass(frozen=True)
class ImageInfo:
    """A snapshot image found by label: its ``id``, ``names`` (``repo:tag``), ``size_bytes``
    and labels."""

    id: str
    names: tuple[str, ...]
    size_bytes: int
    labels: dict[str, str]


def snapshot_labels(
    instance: str, project_id: str, kind: str, work_item: str, key: str | None
) -> dict[str, str]:
    """The labels a snapshot image carries (see the module docstring)."""
    return {
        LABEL_SNAPSHOT: "true",
        LABEL_INSTANCE: instance,
        LABEL_PROJECT: project_id,
        LABEL_WORK_ITEM: work_item,
        LABEL_KIND: kind,
        LABEL_KEY: key or "",
    }


def commit_changes(
    container_env: list[str],
    base_env: list[str],
    labels: dict[str, str],
    container_labels: dict[str, str] | None = None,
    base_labels: dict[str, str] | None = None,
) -> list[str]:
    """The Dockerfile-style changes of a snapshot commit: each variable of ``container_env``
    (``NAME=value``) that the base image does not have with that value emptied, likewise each
    label of the container that the base image does not have (its run's ids), the worker's
    command and working directory, and ``labels``."""
    base = set(base_env)
    changes = []
    for entry in container_env:
        name = entry.partition("=")[0]
        if entry not in base and name:
            changes.append(f"ENV {name}=")
    changes.append(f"CMD {json.dumps(list(WORKER_COMMAND))}")
    changes.append(f"WORKDIR {WORKSPACE}")
    kept = base_labels or {}
    blank = {k: "" for k, v in (container_labels or {}).items() if kept.get(k) != v}
    merged = {**blank, **labels}
    changes.extend(f"LABEL {json.dumps(k)}={json.dumps(v)}" for k, v in merged.items())
    return changes


class SnapshotImages:
    """Image operations on one engine (``client``); each call raises :class:`BackendError`."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    async def _call(self, what: str, fn: Any) -> Any:
        try:
            return await in_thread(fn, name="gaffer-snapshots")
        except (ImageNotFound, NotFound):
            raise
        except docker.errors.APIError as exc:
            raise BackendError(f"{what}: {exc.explanation or exc}") from exc

    async def commit(self, container: str, image: str, labels: dict[str, str]) -> ImageInfo:
        """Commit ``container`` to ``image`` (``repo:tag``, replacing an image of that name)
        with ``labels`` and its env emptied (see the module docstring)."""
        attrs = await self._call(
            "inspecting the container", lambda: self.client.api.inspect_container(container)
        )
        base_env: list[str] = []
        base_labels: dict[str, str] = {}
        try:
            base = await self._call(
                "inspecting the base image",
                lambda: self.client.api.inspect_image(attrs["Image"]),  # type: ignore[no-untyped-call]
            )
            base_env = list(base["Config"].get("Env") or [])
            base_labels = dict(base["Config"].get("Labels") or {})
        except (ImageNotFound, NotFound):
            pass
        env = list(attrs["Config"].get("Env") or [])
        repository, _, tag = image.rpartition(":")
        changes = commit_changes(
            env, base_env, labels, dict(attrs["Config"].get("Labels") or {}), base_labels
        )
        await self._call(
            f"committing {container} to {image}",
            lambda: self.client.api.commit(
                container, repository=repository, tag=tag, changes=changes, pause=True
            ),
        )
        found = await self.inspect(image)
        if found is None:
            raise BackendError(f"the committed image {image} is not there")
        return found

    async def inspect(self, ref: str) -> ImageInfo | None:
        """The image ``ref`` (name or id), or None when there is none."""
        try:
            attrs = await self._call(
                "inspecting an image",
                lambda: self.client.api.inspect_image(ref),  # type: ignore[no-untyped-call]
            )
        except (ImageNotFound, NotFound):
            return None
        return _info(attrs)

    async def list(self, instance: str) -> list[ImageInfo]:
        """Every snapshot image of ``instance`` (by label)."""
        # One label filter: Podman does not AND several label filters of an image listing.
        filters = {"label": [f"{LABEL_INSTANCE}={instance}"]}
        for attempt in range(LIST_TRIES):
            try:
                found = await self._call(
                    "listing snapshot images", lambda: self.client.api.images(filters=filters)
                )
                break
            except BackendError:
                # Podman answers 500 when an image vanishes while it lists (another
                # process deleting one in the same store): ask again.
                if attempt == LIST_TRIES - 1:
                    raise
                await asyncio.sleep(1)
        return [
            ImageInfo(
                id=str(item["Id"]),
                names=tuple(item.get("RepoTags") or ()),
                size_bytes=int(item.get("Size") or 0),
                labels=dict(item.get("Labels") or {}),
            )
            for item in found
            if (item.get("Labels") or {}).get(LABEL_SNAPSHOT) == "true"
        ]

    async def delete(self, ref: str) -> bool:
        """Delete the image ``ref`` (forced: its tags go too); False when it was gone already."""
        try:
            await self._call(
                f"deleting the image {ref}",
                lambda: self.client.api.remove_image(ref, force=True, noprune=False),
            )
        except (ImageNotFound, NotFound):
            return False
        return True


def _info(attrs: dict[str, Any]) -> ImageInfo:
    return ImageInfo(
        id=str(attrs["Id"]),
        names=tuple(attrs.get("RepoTags") or ()),
        size_bytes=int(attrs.get("Size") or 0),
        labels=dict((attrs.get("Config") or {}).get("Labels") or {}),
    )
