"""``GET /api/v1/buffer``: the burst buffer's sizes (superadmin). Its per-run edits (tags,
metadata) are under ``/runs``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from gaffer.api.deps import CallerDep, ServicesDep

router = APIRouter(prefix="/buffer", tags=["buffer"])


class BufferStatsOut(BaseModel):
    """Entries waiting and stale per project id, entries in flight, dead letters."""

    enabled: bool
    entries: dict[str, int]
    stale: dict[str, int]
    in_flight: int
    dead: int
    dead_deliveries: int


@router.get("", response_model=BufferStatsOut)
async def buffer_stats(caller: CallerDep, svc: ServicesDep) -> dict[str, Any]:
    """The burst buffer's sizes."""
    caller.principal.require_superadmin("reading the burst buffer")
    if svc.buffer is None:
        return {
            "enabled": False,
            "entries": {},
            "stale": {},
            "in_flight": 0,
            "dead": 0,
            "dead_deliveries": 0,
        }
    stats = await svc.buffer.stats()
    return {
        "enabled": svc.settings.buffer_enabled,
        "entries": stats.entries,
        "stale": stats.stale,
        "in_flight": stats.in_flight,
        "dead": stats.dead,
        "dead_deliveries": stats.dead_deliveries,
    }
