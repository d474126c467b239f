"""Making a finished worker's container fit to be committed as a snapshot image.

No secret may end up in an image (README "Warm starts"). A container's env is the dispatcher's
to clean (it empties every variable in the commit, :mod:`gaffer.snapshots.images`); its files
are the worker's. Before a successful worker exits, when the backend asked for it
(``GAFFER_SNAPSHOT_PREPARE=1``), :func:`prepare_for_snapshot`:

1. removes the scratch directory (the task, prompts, context files, summaries, output files,
   and the engine's ``HOME`` with its config files, which hold the API key or the provider's
   settings), the worker's own ``HOME`` and everything in ``/tmp`` and ``/var/tmp`` (where CLIs
   drop caches and transcripts);
2. reads every file left in the workspace (both clones, including what the set-up installed)
   for the run's secrets (the engine's API key, the worker's Redis credential): an agent may
   have written one into an ignored file. If any is found, no snapshot is made
   (``snapshot_refused``) and the run still succeeds;
3. emits ``snapshot_ready`` with the files hash of the base branch (for a project snapshot's
   key); the backend commits only a worker that said so and exited 0.

The checkout's ``.git/config`` never had a credential (tokens travel in git's environment).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from gaffer.worker.checkout import Workspace

CHUNK_BYTES = 1 << 20
TEMP_DIRS = (Path("/tmp"), Path("/var/tmp"))


def mount_points(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[Path]:
    """The mount points of this process's mount namespace (field 5 of ``mountinfo``, octal
    escapes decoded); empty when it cannot be read."""
    try:
        text = mountinfo.read_text()
    except OSError:
        return set()
    points = set()
    for line in text.splitlines():
        fields = line.split()
        if len(fields) > 4:
            points.add(Path(fields[4].encode().decode("unicode_escape")))
    return points


def remove_within(path: Path, mounts: set[Path]) -> None:
    """Remove ``path`` and everything under it, except mount points and what lies beneath
    them: a bind mount (the project's local repository, say) is the host's, never the
    snapshot's to delete. Missing paths are fine."""
    if path in mounts or not (path.exists() or path.is_symlink()):
        return
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    if not any(path in m.parents for m in mounts):
        shutil.rmtree(path, ignore_errors=True)
        return
    for child in path.iterdir():
        remove_within(child, mounts)
    if not any(path in m.parents for m in mounts):
        with contextlib.suppress(OSError):
            path.rmdir()


def remove_private_files(ws: Workspace, temp_dirs: Iterable[Path] = TEMP_DIRS) -> None:
    """Remove the scratch directory, the worker's ``HOME`` and the temporary directories'
    contents (see the module docstring), never crossing into a mount point. Missing paths
    are fine."""
    mounts = mount_points()
    remove_within(ws.scratch, mounts)
    remove_within(ws.root / "home", mounts)
    for temp in temp_dirs:
        if temp.is_dir():
            for entry in temp.iterdir():
                remove_within(entry, mounts)


def _files(root: Path) -> Iterator[Path]:
    for directory, _dirs, names in os.walk(root, followlinks=False):
        for name in names:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path


def find_secret(root: Path, secrets: Iterable[str]) -> Path | None:
    """The first regular file under ``root`` that contains one of ``secrets`` (UTF-8 bytes,
    read in chunks with an overlap so a match across chunks is found), or None. Secrets
    shorter than 8 bytes are ignored (they would match by chance)."""
    needles = [s.encode() for s in secrets if s and len(s.encode()) >= 8]
    if not needles:
        return None
    overlap = max(len(n) for n in needles) - 1
    for path in _files(root):
        try:
            with open(path, "rb") as handle:
                tail = b""
                while chunk := handle.read(CHUNK_BYTES):
                    window = tail + chunk
                    if any(n in window for n in needles):
                        return path
                    tail = window[-overlap:] if overlap else b""
        except OSError:
            continue
    return None
