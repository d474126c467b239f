"""A worker's output as lines: bytes in chunks of any size in, decoded lines out.

Both backends get output in chunks (a pipe read, a frame of the engine's log stream) that neither
start nor end on line boundaries. :func:`split_lines` cuts each line at :data:`MAX_LINE_BYTES`,
so one enormous line cannot exhaust the dispatcher's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator

MAX_LINE_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 64 * 1024


async def reader_chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Chunks of at most :data:`READ_CHUNK_BYTES` from ``reader``, until end of file."""
    while chunk := await reader.read(READ_CHUNK_BYTES):
        yield chunk


async def split_lines(chunks: AsyncIterable[bytes], *, tail: bool = True) -> AsyncIterator[str]:
    """Lines (without newline, UTF-8 with replacement) of the bytes in ``chunks``.

    A line longer than :data:`MAX_LINE_BYTES` is cut there and ends in ``" [line truncated]"``;
    a last line without a newline is yielded too, unless ``tail`` is False (a stream that may
    have been cut mid-line, to be read again).
    """
    pending = bytearray()
    truncated = False
    async for chunk in chunks:
        start = 0
        while True:
            newline = chunk.find(b"\n", start)
            piece = chunk[start:] if newline < 0 else chunk[start:newline]
            room = MAX_LINE_BYTES - len(pending)
            if len(piece) > room:
                piece = piece[: max(room, 0)]
                truncated = True
            pending += piece
            if newline < 0:
                break
            yield _finish(pending, truncated)
            pending.clear()
            truncated = False
            start = newline + 1
    if pending and tail:
        yield _finish(pending, truncated)


def _finish(line: bytearray, truncated: bool) -> str:
    text = line.decode(errors="replace")
    return text + " [line truncated]" if truncated else text
