"""Fault injection of the fake GitHub (mixed into :class:`FakeGitHub`); seeding itself is
the stand-in's (:mod:`gaffer.demo.github.seeding`)."""

from __future__ import annotations

import re
import time

from gaffer.demo.github.seeding import Seeding
from tests.support.fake_github.faults import Fault, Faults

__all__ = ["FaultInjection", "Seeding"]


class FaultInjection:
    """The failures tests make the fake answer."""

    faults: Faults

    # --- failures -------------------------------------------------------------------------

    def fail_next(self, n: int, status: int = 502, match: str = "") -> None:
        """Answer the next ``n`` calls matching regex ``match`` (on ``METHOD /path``) with
        ``status``."""
        self.faults.add(Fault("status", re.compile(match), remaining=n, status=status))

    def fail_for(self, seconds: float, status: int = 503, match: str = "") -> None:
        """Answer every matching call with ``status`` for ``seconds``."""
        self.faults.add(
            Fault("status", re.compile(match), until=time.monotonic() + seconds, status=status)
        )

    def rate_limit_next(self, n: int = 1, retry_after_s: int = 1, match: str = "") -> None:
        """Answer the next ``n`` matching calls 403 secondary rate limit, ``Retry-After``."""
        self.faults.add(
            Fault("rate_limit", re.compile(match), remaining=n, retry_after_s=retry_after_s)
        )

    def primary_rate_limit_next(self, n: int = 1, reset_in_s: int = 1, match: str = "") -> None:
        """Answer the next ``n`` matching calls 403 with the primary limit spent
        (``X-RateLimit-Remaining: 0``, ``X-RateLimit-Reset`` ``reset_in_s`` from now)."""
        self.faults.add(
            Fault("primary_rate_limit", re.compile(match), remaining=n, retry_after_s=reset_in_s)
        )

    def hang_after_next(self, seconds: float, n: int = 1, match: str = "") -> None:
        """Handle the next ``n`` matching calls (GitHub makes the change) but hold the answer
        for ``seconds``: the caller may time out or die before it hears of it."""
        self.faults.add(Fault("hang_after", re.compile(match), remaining=n, hang_s=seconds))

    def hang_next(self, seconds: float, n: int = 1, match: str = "") -> None:
        """Hold the next ``n`` matching calls for ``seconds`` before answering."""
        self.faults.add(Fault("hang", re.compile(match), remaining=n, hang_s=seconds))
