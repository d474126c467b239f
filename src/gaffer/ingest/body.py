"""Reading a request body with a size limit, without holding more than the limit in memory."""

from __future__ import annotations

from starlette.requests import Request


class BodyTooLargeError(ValueError):
    """The body is larger than the limit (answered with 413)."""


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, or :class:`BodyTooLargeError` as soon as it exceeds ``max_bytes``.

    A ``Content-Length`` over the limit is refused before anything is read.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLargeError(f"body of {declared} bytes exceeds {max_bytes} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLargeError(f"body exceeds {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
