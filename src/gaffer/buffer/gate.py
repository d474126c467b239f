"""The buffer gate: at trigger time, does a submission go to the run engine or the buffer?

Rules (issue 5, "Gate"), in order:

1. the global switch ``GAFFER_BUFFER_ENABLED`` off → pass (``disabled``);
2. the project's organization not enrolled (``GAFFER_BUFFER_ORGANIZATIONS``: ids, or ``*``)
   → pass (``not_enrolled``);
3. one atomic script (``lua/gate.lua``) counts the triggers in a per-project fixed window
   (INCRBY + PEXPIRE of ``GAFFER_BUFFER_WINDOW_MS``). Over ``GAFFER_BUFFER_THRESHOLD`` it sets
   the project's hold marker for ``GAFFER_BUFFER_HOLD_MS`` (``tripped``), refreshed by every
   further overage (``overage``); while the marker exists every trigger is buffered
   (``held``). Beyond the issue, a trigger of a project that still has entries waiting is
   buffered too (``backlog``): it keeps the project's runs in trigger order and keeps the tail
   of a burst off the database until the backlog has drained.
4. shadow mode (``GAFFER_BUFFER_SHADOW``) logs ``buffer_gate_would_buffer`` and passes.

Any error in the gate passes the trigger through (fail open, ``error``); every decision is
counted per trigger in ``gaffer_buffer_gate_decisions_total{outcome, reason}``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
import structlog

from gaffer.buffer import keys
from gaffer.buffer.metrics import GATE_DECISIONS
from gaffer.buffer.scripts import lua_source
from gaffer.settings import Settings
from gaffer.store.projects import ProjectSnapshot

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class GateDecision:
    """``buffer``: hold the submission. ``outcome``: ``buffer``, ``pass`` or ``shadow``;
    ``reason``: why (see the module docstring)."""

    buffer: bool
    outcome: str
    reason: str


class BufferGate:
    """Decides per submission; one per process, shared by every request."""

    def __init__(self, settings: Settings, redis: aioredis.Redis) -> None:
        self.settings = settings
        self.redis = redis
        self._script = redis.register_script(lua_source("gate", common=False))

    def enrolled(self, project: ProjectSnapshot) -> bool:
        """True when the project's organization is enrolled in the buffer."""
        settings = self.settings
        return settings.buffer_enrolled_all or project.organization_id in settings.buffer_enrolled

    async def decide(self, project: ProjectSnapshot, triggers: int) -> GateDecision:
        """The decision for ``triggers`` (>= 1) runs of ``project`` submitted together.

        Never raises: an error passes the submission through (and is logged and counted).
        """
        decision = await self._decide(project, triggers)
        GATE_DECISIONS.labels(decision.outcome, decision.reason).inc(triggers)
        return decision

    async def _decide(self, project: ProjectSnapshot, triggers: int) -> GateDecision:
        settings = self.settings
        if not settings.buffer_enabled:
            return GateDecision(False, "pass", "disabled")
        if not self.enrolled(project):
            return GateDecision(False, "pass", "not_enrolled")
        try:
            hold, reason = await self._script(
                keys=[
                    keys.gate_window(project.id),
                    keys.gate_hold(project.id),
                    keys.queue(project.id),
                ],
                args=[
                    triggers,
                    settings.buffer_threshold,
                    settings.buffer_window_ms,
                    settings.buffer_hold_ms,
                ],
            )
        except Exception as exc:
            log.warning(
                "buffer_gate_failed_open",
                project=project.name,
                error=f"{type(exc).__name__}: {exc}",
            )
            return GateDecision(False, "pass", "error")
        reason = reason.decode() if isinstance(reason, bytes) else str(reason)
        if not hold:
            return GateDecision(False, "pass", reason)
        if reason == "tripped":
            log.info("buffer_gate_tripped", project=project.name, project_id=project.id)
        if settings.buffer_shadow:
            log.info(
                "buffer_gate_would_buffer", project=project.name, reason=reason, triggers=triggers
            )
            return GateDecision(False, "shadow", reason)
        return GateDecision(True, "buffer", reason)
