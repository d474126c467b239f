"""A worker container's output, followed across restarts of the engine's API service.

The engine's log stream (``follow``) ends when the container exits. It also ends, or breaks,
when the API service goes away while the container runs on (Podman's service is an ordinary
process, restarted by an upgrade or a unit file). So lines are requested with their timestamps,
and when the stream ends while the container still runs, or breaks, it is opened again from the
second of the last line received; the lines of that second already received are skipped, by
count (Podman's API stamps lines to the second, and a second's lines come back in order). The
same cursor (:class:`~gaffer.backends.base.LogCursor`), recorded with the lines, lets a
dispatcher that re-attaches after another died start just after the last line recorded. It
retries every :data:`RETRY_INTERVAL_S` for up to :data:`RESUME_TRIES` tries in a row, then says
so in the output and ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import docker
import structlog
from docker.errors import DockerException, NotFound
from requests.exceptions import RequestException
from urllib3.exceptions import HTTPError

from gaffer.aio import in_thread, iterate_in_thread
from gaffer.backends.base import LogCursor
from gaffer.backends.lines import split_lines

log = structlog.get_logger(__name__)

RETRY_INTERVAL_S = 1.0
RESUME_TRIES = 60
ENGINE_ERRORS = (DockerException, RequestException, HTTPError)
"""What a broken stream or an unreachable engine raises (urllib3's ``ProtocolError`` escapes
``requests`` when a chunked stream is cut mid-read)."""
_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?(Z|[+-]\d\d:\d\d)")


def stamp_second(stamp: str) -> int | None:
    """The UNIX second of an RFC 3339 log timestamp (``2026-11-21T12:56:26Z``, with or without
    a fraction), or None when ``stamp`` is not one."""
    match = _STAMP.fullmatch(stamp)
    if match is None:
        return None
    zone = "+00:00" if match[2] == "Z" else match[2]
    return int(datetime.fromisoformat(match[1] + zone).timestamp())


class ContainerLogs:
    """The output of container ``ref`` (stdout and stderr merged), line by line, after
    ``start`` (None: from the start), until the container exits or :meth:`close`. ``cursor``
    says how far it has got, for the line yielded last."""

    def __init__(
        self, client: docker.DockerClient, ref: str, name: str, start: LogCursor | None
    ) -> None:
        self.client = client
        self.ref = ref
        self.name = name
        self.cursor = start
        self._stream: Any = None
        self._closed = False
        self._mid_line = False

    def close(self) -> None:
        """Stop following: closes the current stream, which ends :meth:`lines`."""
        self._closed = True
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()

    async def lines(self) -> AsyncIterator[str]:
        """The lines (see the class docstring); never raises an engine error.

        Each pass opens the stream from the second of :attr:`cursor` and skips what it already
        yielded: lines stamped before that second, and that second's first ``cursor.lines``.
        Once past them, every line is yielded, even one stamped earlier than the line before
        it (Docker stamps stdout and stderr apart); :attr:`cursor` only moves forward. A pass
        holds back a last line with no newline (a broken stream may have cut it); when the
        container has exited and the stream ended mid-line, one last pass from the cursor
        yields it.
        """
        second = None if self.cursor is None else self.cursor.second  # newest second yielded
        in_second = 0 if self.cursor is None else self.cursor.lines  # its lines yielded
        tries = 0
        final = False
        unstamped = False
        while True:
            skip = in_second
            resuming = second is not None
            error: str | None = None
            try:
                async for stamped in split_lines(self._chunks(second), tail=final):
                    stamp, _, line = stamped.partition(" ")
                    at = stamp_second(stamp)
                    if at is None:
                        unstamped = True
                        yield stamped  # an engine that sent no timestamp
                        continue
                    if resuming and second is not None:
                        if at < second:
                            continue
                        if at == second and skip > 0:
                            skip -= 1  # yielded before the stream was opened again
                            continue
                        resuming = False
                    if second is None or at > second:
                        second, in_second = at, 0
                    if at == second:
                        in_second += 1
                        self.cursor = LogCursor(second, in_second)
                    tries = 0
                    yield line
            except ENGINE_ERRORS as exc:
                error = str(exc)
            if self._closed or final:
                return
            if error is None and not await self._running():
                if unstamped or not self._mid_line:
                    return  # nothing held back, or no cursor to read again from
                final = True
                continue
            tries += 1
            if tries > RESUME_TRIES:
                yield f"[gaffer: lost the container's log stream: {error or 'it ended early'}]"
                return
            if tries == 1:
                log.warning("docker_log_stream_broke", container=self.name, error=error)
            await asyncio.sleep(RETRY_INTERVAL_S)

    async def _chunks(self, since: int | None) -> AsyncIterator[bytes]:
        """The raw log stream from second ``since`` (None: from the start), read in a thread;
        notes whether it stopped mid-line (``_mid_line``)."""
        opened = functools.partial(self._open, None if since is None else float(since))
        self._mid_line = False
        async for chunk in iterate_in_thread(opened, name="gaffer-logs"):
            self._mid_line = not chunk.endswith(b"\n")
            yield chunk

    def _open(self, since: float | None) -> Iterator[bytes]:
        stream = self.client.api.logs(
            self.ref,
            stdout=True,
            stderr=True,
            stream=True,
            follow=True,
            timestamps=True,
            since=since,
        )
        self._stream = stream
        if self._closed:
            stream.close()
        return iter(stream)

    async def _running(self) -> bool:
        """Whether the container still runs (an engine error counts as yes: try again)."""
        try:
            attrs = await in_thread(lambda: self.client.api.inspect_container(self.ref))
        except NotFound:
            return False
        except ENGINE_ERRORS:
            return True
        return bool(attrs["State"].get("Running"))
