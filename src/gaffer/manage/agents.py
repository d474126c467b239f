"""A project's agents as ``gaffer agents`` and ``/api/v1/projects/{p}/agents`` show and change
them: each field of the effective definition with its source, and overrides written with their
audit row in the caller's transaction.

Every change is validated before anything is written (:func:`gaffer.store.agents.set_agent`:
the agent type, the engine, limits, URLs, templates against the agent's variables).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from gaffer.accounts import audit
from gaffer.accounts.principal import Principal
from gaffer.agents.definition import definitions
from gaffer.agents.effective import InvalidOverrideError, effective_agent
from gaffer.engines import DEFAULT_CREDENTIALS
from gaffer.store.agents import agent_config, reset_agent, set_agent
from gaffer.store.models import Project
from gaffer.triggers.github import default_events


def agent_view(project: Project, agent_type: str) -> dict[str, Any]:
    """One agent of ``project`` (agents and triggers loaded) as JSON-ready data:
    ``{"project", "enabled", "engine_settings", "events", "agent_type", "fields": {name:
    {"value", "source"}}}``. Raises :class:`~gaffer.agents.definition.DefinitionError` for an
    unknown agent type."""
    config = agent_config(project, agent_type)
    engine = config.engine if config is not None else "-"
    effective = effective_agent(
        agent_type,
        engine,
        config.overrides if config is not None else {},
        default_credential=DEFAULT_CREDENTIALS.get(engine),
    )
    return {
        "project": project.name,
        "enabled": bool(config is not None and config.enabled),
        "engine_settings": dict(config.engine_settings) if config is not None else {},
        "events": sorted(t.event for t in project.triggers if t.agent_type == agent_type),
        **effective.as_dict(),
    }


def agent_views(project: Project) -> list[dict[str, Any]]:
    """:func:`agent_view` of every shipped agent type, by name."""
    return [agent_view(project, name) for name in sorted(definitions())]


@dataclass(frozen=True)
class AgentChange:
    """What ``agents set`` changes: ``engine`` (with ``command`` for the command engine; a
    new engine without a command clears the engine settings), ``overrides`` (field -> value,
    see :data:`gaffer.agents.effective.OVERRIDABLE`; None values are left out) and
    ``enabled``."""

    engine: str | None = None
    command: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    enabled: bool | None = None

    def changed(self) -> list[str]:
        """The names of the fields this change sets, as ``agents set`` reports them."""
        return (
            sorted(k for k, v in self.overrides.items() if v is not None)
            + (["engine"] if self.engine else [])
            + (["enabled"] if self.enabled is not None else [])
        )


def change_agent(
    session: Session,
    principal: Principal,
    project: Project,
    agent_type: str,
    change: AgentChange,
    *,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Apply ``change`` to ``project``'s ``agent_type`` and record ``agent.set`` in the same
    transaction; the agent's new :func:`agent_view`.

    Raises :class:`~gaffer.agents.definition.DefinitionError` (unknown agent type) and
    :class:`InvalidOverrideError` (the command engine without a command, an unknown engine, a
    refused override or template); nothing is written then.
    """
    if change.engine == "command" and change.command is None:
        raise InvalidOverrideError("engine: the command engine needs a command")
    overrides = {k: v for k, v in change.overrides.items() if v is not None}
    settings = (
        {"command": change.command}
        if change.command is not None
        else ({} if change.engine else None)
    )
    before = _state(project, agent_type)
    set_agent(
        session,
        project,
        agent_type,
        engine=change.engine,
        engine_settings=settings,
        overrides=overrides,
        enabled=change.enabled,
        events=default_events(agent_type),
    )
    _record(session, principal, project, "agent.set", agent_type, before, request_id)
    return agent_view(project, agent_type)


def reset_overrides(
    session: Session,
    principal: Principal,
    project: Project,
    agent_type: str,
    fields: Sequence[str] = (),
    *,
    request_id: str | None = None,
) -> dict[str, Any]:
    """Drop ``project``'s overrides of ``agent_type`` (the named ``fields``, or all) and record
    ``agent.reset`` in the same transaction; the agent's new :func:`agent_view`. Raises what
    :func:`gaffer.store.agents.reset_agent` raises; nothing is written then."""
    before = _state(project, agent_type)
    reset_agent(session, project, agent_type, fields)
    _record(session, principal, project, "agent.reset", agent_type, before, request_id)
    return agent_view(project, agent_type)


def _state(project: Project, agent_type: str) -> dict[str, Any]:
    config = agent_config(project, agent_type)
    if config is None:
        return {}
    return {
        "engine": config.engine,
        "engine_settings": dict(config.engine_settings),
        "enabled": config.enabled,
        "overrides": dict(config.overrides or {}),
    }


def _record(
    session: Session,
    principal: Principal,
    project: Project,
    action: str,
    agent_type: str,
    before: dict[str, Any],
    request_id: str | None,
) -> None:
    audit.record(
        session,
        principal,
        action,
        target_type="project",
        target_id=project.id,
        organization_id=project.organization_id,
        change={"agent_type": agent_type, "before": before, "after": _state(project, agent_type)},
        request_id=request_id,
    )
