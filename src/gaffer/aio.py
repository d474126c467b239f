"""asyncio helpers: the fastest event loop, and blocking calls kept off the shared thread pool.

:func:`in_thread` and :func:`iterate_in_thread` run blocking calls (the Docker SDK's, which can
block for a whole run: a log stream, a wait) on daemon threads of their own. On
:func:`asyncio.to_thread`'s default pool (a handful of threads on a small machine) a few such
calls would starve the database calls that share it; and a daemon thread never holds up the
process's exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

_ITEM, _ERROR, _END = "item", "error", "end"


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion on a new event loop (uvloop's when available) and return
    its result; like :func:`asyncio.run`."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


def _settle(future: asyncio.Future[T], result: T | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]


async def in_thread(fn: Callable[[], T], *, name: str = "gaffer-blocking") -> T:
    """Run ``fn()`` on a new daemon thread and return (or raise) what it does.

    Cancelling the awaiting task does not stop ``fn``; its result is then dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def run() -> None:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting task
            error = exc
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_settle, future, result, error)

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future


async def iterate_in_thread(
    open_iterator: Callable[[], Iterator[T]],
    *,
    max_pending: int = 256,
    name: str = "gaffer-stream",
) -> AsyncIterator[T]:
    """The items of a blocking iterator, read on a daemon thread.

    ``open_iterator`` is called on that thread. At most ``max_pending`` items wait for the
    consumer (the thread blocks beyond that: backpressure). An exception of the iterator is
    raised here after the items before it. When the consumer stops early, the thread stops at
    its next item; to unblock a thread stuck in a read, close the iterator's source.
    """
    loop = asyncio.get_running_loop()
    items: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    room = threading.Semaphore(max_pending)
    closed = threading.Event()

    def send(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(items.put_nowait, (kind, value))
        except RuntimeError:  # the loop is closed
            closed.set()

    def run() -> None:
        try:
            for item in open_iterator():
                while not room.acquire(timeout=0.5):
                    if closed.is_set():
                        return
                if closed.is_set():
                    return
                send(_ITEM, item)
        except BaseException as exc:  # handed to the consumer
            send(_ERROR, exc)
        finally:
            send(_END, None)

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while True:
            kind, value = await items.get()
            if kind == _ITEM:
                room.release()
                yield value
            elif kind == _ERROR:
                raise value
            else:
                return
    finally:
        closed.set()
