"""Reading a request body with a size limit, without holding more than the limit in memory."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLargeError(ValueError):
    """The body is larger than the limit (answered with 413)."""


DRAIN_FACTOR = 4
"""An oversize body is read and discarded up to this many times the limit before the 413, so
an ordinary client that sends its whole body first gets the answer instead of a reset
connection; beyond that the connection is dropped."""


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or :class:`BodyTooLargeError` when it exceeds ``max_bytes``.

    Never holds more than ``max_bytes`` in memory.
    """
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            chunks.clear()
            if size > DRAIN_FACTOR * max_bytes:
                break
            continue
        chunks.append(chunk)
    if size > max_bytes:
        raise BodyTooLargeError(f"body exceeds {max_bytes} bytes")
    return b"".join(chunks)
