"""Changing a project's agents: engine, engine settings, enablement and definition overrides.

Every change is validated before anything is written (:func:`gaffer.agents.effective.
validate_overrides`: limits, URLs, templates against the agent's variables), so a bad template
or an unknown engine leaves the project as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from gaffer.agents.definition import definition
from gaffer.agents.effective import OVERRIDABLE, InvalidOverrideError, validate_overrides
from gaffer.engines import ENGINES
from gaffer.store.models import AgentConfig, Project, TriggerConfig


def agent_config(project: Project, agent_type: str) -> AgentConfig | None:
    """The project's config row of ``agent_type`` (agents must be loaded), or None."""
    return next((a for a in project.agents if a.agent_type == agent_type), None)


def set_agent(
    session: Session,
    project: Project,
    agent_type: str,
    *,
    engine: str | None = None,
    engine_settings: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    enabled: bool | None = None,
    events: Sequence[str] = (),
) -> AgentConfig:
    """Change (or create) the project's config of ``agent_type``: the given fields only;
    ``overrides`` are merged into the stored ones (a value of None removes that override).

    A new config takes ``engine`` or, when None, the engine most of the project's agents use;
    its triggers are ``events`` (the trigger table's defaults for the agent, from the caller).
    Raises :class:`~gaffer.agents.definition.DefinitionError` (unknown agent type) and
    :class:`InvalidOverrideError` (unknown engine, bad override); nothing is written then.
    """
    definition(agent_type)
    if engine is not None and engine not in ENGINES:
        raise InvalidOverrideError(
            f"engine: unknown engine {engine!r} (known: {', '.join(sorted(ENGINES))})"
        )
    config = agent_config(project, agent_type)
    merged = dict(config.overrides or {}) if config is not None else {}
    for key, value in (overrides or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    validate_overrides(agent_type, merged)
    if config is None:
        chosen = engine or _usual_engine(project.agents)
        if chosen is None:
            raise InvalidOverrideError(f"engine: {agent_type} is new on this project: name one")
        config = AgentConfig(
            agent_type=agent_type, engine=chosen, engine_settings={}, enabled=True, overrides={}
        )
        if engine_settings is None:
            engine_settings = _usual_settings(project.agents, chosen)
        project.agents.append(config)
        for event in events:
            if not any(t.agent_type == agent_type and t.event == event for t in project.triggers):
                project.triggers.append(
                    TriggerConfig(agent_type=agent_type, event=event, enabled=True)
                )
    if engine is not None:
        config.engine = engine
    if engine_settings is not None:
        config.engine_settings = dict(engine_settings)
    if enabled is not None:
        config.enabled = enabled
    config.overrides = merged
    session.flush()
    return config


def reset_agent(
    session: Session, project: Project, agent_type: str, fields: Iterable[str] = ()
) -> AgentConfig:
    """Drop the project's overrides of ``agent_type``: the named ``fields``, or all of them.

    Raises :class:`InvalidOverrideError` for a field that cannot be overridden, or when the
    project has no config for the agent."""
    definition(agent_type)
    config = agent_config(project, agent_type)
    if config is None:
        raise InvalidOverrideError(f"{agent_type} is not configured on project {project.name!r}")
    chosen = list(fields)
    unknown = sorted(set(chosen) - set(OVERRIDABLE))
    if unknown:
        raise InvalidOverrideError(
            f"{unknown[0]}: not an overridable field (those are: {', '.join(OVERRIDABLE)})"
        )
    kept = {} if not chosen else {k: v for k, v in (config.overrides or {}).items()}
    for key in chosen:
        kept.pop(key, None)
    config.overrides = kept
    session.flush()
    return config


def _usual_engine(agents: Sequence[AgentConfig]) -> str | None:
    engines = [a.engine for a in agents]
    return max(set(engines), key=engines.count) if engines else None


def _usual_settings(agents: Sequence[AgentConfig], engine: str) -> dict[str, Any]:
    for agent in agents:
        if agent.engine == engine:
            return dict(agent.engine_settings)
    return {}
