"""``/api/v1/projects/{name}/agents``: a project's agents with their effective definitions
(member), overrides set and reset (admin of the project's organization), each write audited in
its transaction. Views and writes are :mod:`gaffer.manage.agents`', as ``gaffer agents``
prints them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from gaffer.accounts.roles import Role
from gaffer.agents.effective import OVERRIDABLE
from gaffer.api.answers import as_given
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.api.scope import project_for
from gaffer.manage.agents import AgentChange, agent_view, agent_views, change_agent, reset_overrides

router = APIRouter(prefix="/projects", tags=["agents"])


class FieldOut(BaseModel):
    """One field of an effective definition: its value and where it came from (``package``,
    ``project override`` or ``engine default``)."""

    value: Any
    source: str


class AgentDefinitionOut(BaseModel):
    """An agent of a project: enabled or not, its engine settings, the events that start
    it, and every field of its effective definition with its source."""

    project: str
    enabled: bool
    engine_settings: dict[str, Any]
    events: list[str]
    agent_type: str
    fields: dict[str, FieldOut]


class AgentChangeIn(BaseModel):
    """Fields to change; those left out keep their value. ``engine`` ``command`` needs
    ``command``; a new engine without one clears the engine settings. The overrides (model to
    continuation_turns) are checked like ``gaffer agents set``'s (templates against the
    agent's variables): a refused one answers 400 and nothing is written."""

    model_config = ConfigDict(extra="forbid")

    engine: str | None = None
    command: str | None = None
    enabled: bool | None = None
    model: str | None = None
    base_url: str | None = None
    credential: str | None = None
    system_prompt: str | None = None
    task_prompt: str | None = None
    max_turns: int | None = None
    continuation_turns: int | None = None


@router.get("/{name}/agents", response_model=list[AgentDefinitionOut])
def list_agents(name: str, caller: CallerDep, svc: ServicesDep) -> JSONResponse:
    """Every agent type on the project (by name), configured or not."""
    with svc.db.session() as session:
        return as_given(agent_views(project_for(session, caller.principal, name, Role.MEMBER)))


@router.get("/{name}/agents/{agent_type}", response_model=AgentDefinitionOut)
def show_agent(name: str, agent_type: str, caller: CallerDep, svc: ServicesDep) -> JSONResponse:
    """One agent's effective definition and where each field came from (400: no such agent
    type)."""
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.MEMBER)
        return as_given(agent_view(project, agent_type))


@router.patch("/{name}/agents/{agent_type}", response_model=AgentDefinitionOut)
def set_agent(
    name: str, agent_type: str, body: AgentChangeIn, caller: CallerDep, svc: ServicesDep
) -> JSONResponse:
    """Override the agent's engine, model, prompts or limits, or turn it on or off (admin)."""
    given = body.model_dump(exclude_none=True)
    change = AgentChange(
        engine=given.pop("engine", None),
        command=given.pop("command", None),
        enabled=given.pop("enabled", None),
        overrides=given,
    )
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.ADMIN)
        view = change_agent(
            session, caller.principal, project, agent_type, change, request_id=caller.request_id
        )
        return as_given(view)


@router.delete("/{name}/agents/{agent_type}/overrides", response_model=AgentDefinitionOut)
def reset_agent(
    name: str,
    agent_type: str,
    caller: CallerDep,
    svc: ServicesDep,
    field: list[str] = Query(
        default_factory=list, description=f"Only these ({', '.join(OVERRIDABLE)}); default all."
    ),
) -> JSONResponse:
    """Drop the project's overrides of the agent: back to the package's definition (admin)."""
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.ADMIN)
        view = reset_overrides(
            session, caller.principal, project, agent_type, field, request_id=caller.request_id
        )
        return as_given(view)
