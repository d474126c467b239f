"""Project snapshot keys: what a project snapshot was made from, so it is rebuilt when that changes.

A project snapshot's key is ``<worker image id>+<files hash>``: the id (digest) of the worker
image it was built on, and :func:`files_hash`, a SHA-256 over the set-up (the project's set-up
command, or the repository's ``.gaffer/setup.sh``) and every tracked lock file of the base
branch (:data:`LOCK_FILES`, at any depth, with their paths). A new worker image, a changed
set-up or a changed lock file makes another key, and the snapshot is built again; a run whose
project snapshot's key no longer matches runs the set-up again (:mod:`gaffer.worker.main`).
The worker computes the files hash (it has the repository); the dispatcher knows the image id.
"""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path

from gaffer.worker.git import git

LOCK_FILES = (
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "uv.lock",
    "poetry.lock",
    "Pipfile.lock",
    "pdm.lock",
    "requirements*.txt",
    "constraints*.txt",
    "go.sum",
    "Cargo.lock",
    "Gemfile.lock",
    "composer.lock",
    "mix.lock",
    "pubspec.lock",
    "Package.resolved",
    "flake.lock",
    ".gaffer/setup.sh",
    ".gaffer/refresh.sh",
)
"""Base names (shell patterns) of the files a set-up installs from; the two ``.gaffer`` scripts
count by their path."""


def is_key_file(path: str) -> bool:
    """True when the tracked ``path`` (``/``-separated) takes part in the files hash."""
    if path in (".gaffer/setup.sh", ".gaffer/refresh.sh"):
        return True
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in LOCK_FILES[:-2])


def files_hash(repository: Path, ref: str, setup_command: str | None) -> str:
    """``sha256:<hex>`` over ``setup_command`` and the key files of ``ref`` in the git
    ``repository`` (read with ``git ls-tree`` / ``git cat-file``, not from a work tree).
    Raises :class:`~gaffer.worker.git.GitError`."""
    digest = hashlib.sha256()
    digest.update(b"setup-command\0" + (setup_command or "").encode() + b"\0")
    listing = git("ls-tree", "-r", "-z", ref, cwd=repository, strip=False)
    for entry in sorted(e for e in listing.split("\0") if e):
        meta, _, path = entry.partition("\t")
        kind, sha = meta.split()[1:3]
        if kind == "blob" and is_key_file(path):
            digest.update(path.encode() + b"\0" + sha.encode() + b"\0")
    return "sha256:" + digest.hexdigest()


def project_key(base_image_id: str, files: str) -> str:
    """The project snapshot key: ``<worker image id>+<files hash>``."""
    return f"{base_image_id}+{files}"
