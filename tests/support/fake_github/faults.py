"""Injectable failures: server errors, secondary rate limits, hangs."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass


@dataclass
class Fault:
    """What to do instead of answering, for requests whose ``METHOD path`` matches ``pattern``.

    ``kind``: ``"status"`` (answer ``status``), ``"rate_limit"`` (403 secondary rate limit
    with ``Retry-After: retry_after_s``), ``"primary_rate_limit"`` (403 with
    ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset`` ``retry_after_s`` from now),
    ``"hang"`` (sleep ``hang_s`` then answer normally), ``"hang_after"`` (handle the call,
    then sleep ``hang_s`` before answering); on git smart HTTP (matched against ``METHOD
    path?query``): ``"echo_credentials"`` (refuse with 403 and a ``text/plain`` body quoting
    the request's ``Authorization`` header and the token in it, as a careless proxy might: git
    relays such a body as ``remote:`` lines in its error).
    Applies to the next ``remaining`` matching calls, or until ``until`` (monotonic seconds).
    """

    kind: str
    pattern: re.Pattern[str]
    remaining: int | None = None
    until: float | None = None
    status: int = 502
    retry_after_s: int = 1
    hang_s: float = 0.0

    def live(self) -> bool:
        if self.until is not None and time.monotonic() >= self.until:
            return False
        return self.remaining is None or self.remaining > 0


class Faults:
    """The fake's fault schedule (thread-safe); :meth:`take` consumes a matching fault."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str, kinds: tuple[str, ...] | None = None) -> Fault | None:
        """The first live fault matching ``METHOD path`` (and of one of ``kinds``, when
        given), with one use consumed."""
        key = f"{method.upper()} {path}"
        with self._lock:
            self._faults = [f for f in self._faults if f.live()]
            for fault in self._faults:
                if kinds is not None and fault.kind not in kinds:
                    continue
                if fault.pattern.search(key):
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return fault
        return None
