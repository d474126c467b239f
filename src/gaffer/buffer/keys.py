"""Redis key names of the burst buffer (the Lua scripts build the same names; see
``lua/common.lua`` for the layout)."""

from __future__ import annotations

from gaffer.coordination.keys import encode_part, key

PREFIX = key("buffer")
"""``gaffer:buffer``: every buffer key starts with it (the scripts get it as ``ARGV[1]``)."""

ORGS = key("buffer", "orgs")
IN_FLIGHT = key("buffer", "inflight")
DEAD = key("buffer", "dead")
DEAD_DELIVERIES = key("buffer", "dead", "deliveries")
"""Deferred delivery records the database refused for good: JSON ``{"record", "error"}``."""
STALE_COUNTS = key("buffer", "stale", "counts")
STALE_STATE = key("buffer", "stale", "state")
STALE_ORGS = key("buffer", "stale", "orgs")
ORG_CURSOR = key("buffer", "cursor")
PENDING_DELIVERIES = key("buffer", "deliveries")


def segment(value: str) -> str:
    """The encoded key segment of a run, project or organization id."""
    return encode_part(value)


def entry(run_id: str) -> str:
    """The entry hash of a buffered run."""
    return key("buffer", "e", run_id)


def queue(project_id: str) -> str:
    """The FIFO list of a project's buffered run segments."""
    return key("buffer", "q", project_id)


def org_projects(organization_id: str) -> str:
    """The set of an organization's projects that have entries."""
    return key("buffer", "o", organization_id)


def idempotency(project_id: str, idempotency_key: str) -> str:
    """The key binding a project's idempotency key to a buffered run."""
    return key("buffer", "idem", project_id, idempotency_key)


def gate_window(project_id: str) -> str:
    """The gate's fixed-window trigger counter of a project."""
    return key("buffer", "gate", project_id, "n")


def gate_hold(project_id: str) -> str:
    """The gate's hold marker of a project."""
    return key("buffer", "gate", project_id, "hold")
