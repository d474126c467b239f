"""Queries over organizations, projects, agent configs and trigger configs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from gaffer.errors import UserError
from gaffer.store.crypto import SecretBox
from gaffer.store.models import AgentConfig, Organization, Project, TriggerConfig


class ProjectExistsError(UserError, ValueError):
    """A project with that name already exists."""


class ProjectNotFoundError(UserError, LookupError):
    """No project has that name or id."""


@dataclass(frozen=True)
class AgentSetup:
    """An agent to enable on a new project: its engine, the engine's settings, its events.

    ``events`` are trigger keys such as ``"issues.labeled"``; see :mod:`gaffer.triggers.github`.
    """

    agent_type: str
    engine: str
    engine_settings: dict[str, Any] = field(default_factory=dict)
    events: Sequence[str] = ()
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentSnapshot:
    """An enabled agent of a project: its engine, the engine's settings, and the project's
    overrides of the agent's definition (:mod:`gaffer.agents.effective`)."""

    agent_type: str
    engine: str
    engine_settings: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ProjectSnapshot:
    """A project's configuration read at one moment, detached from any session.

    Ingest caches these (for ``project_cache_ttl_s``) to verify signatures and evaluate
    triggers without a database read per delivery. ``secret`` is the decrypted webhook secret;
    ``triggers`` the ``(agent_type, event)`` pairs that may start a run.
    """

    id: str
    name: str
    organization_id: str
    repository: str
    clone_url: str
    base_branch: str
    bot_login: str
    trigger_label: str
    secret: str
    agents: dict[str, AgentSnapshot]
    triggers: frozenset[tuple[str, str]]

    @classmethod
    def of(cls, project: Project, box: SecretBox) -> ProjectSnapshot:
        """Snapshot ``project`` (agents and triggers must be loaded)."""
        agents = {
            a.agent_type: AgentSnapshot(
                a.agent_type, a.engine, dict(a.engine_settings), dict(a.overrides or {})
            )
            for a in project.agents
            if a.enabled
        }
        return cls(
            id=project.id,
            name=project.name,
            organization_id=project.organization_id,
            repository=project.repository,
            clone_url=project.clone_url,
            base_branch=project.base_branch,
            bot_login=project.bot_login,
            trigger_label=project.trigger_label,
            secret=box.decrypt(project.webhook_secret_encrypted),
            agents=agents,
            triggers=frozenset(
                (t.agent_type, t.event)
                for t in project.triggers
                if t.enabled and t.agent_type in agents
            ),
        )

    def trigger_enabled(self, agent_type: str, event: str) -> bool:
        """True when ``event`` may start ``agent_type`` on this project."""
        return (agent_type, event) in self.triggers


def get_or_create_organization(session: Session, name: str) -> Organization:
    """The organization called ``name``, created if missing."""
    org = session.scalar(select(Organization).where(Organization.name == name))
    if org is None:
        org = Organization(name=name)
        session.add(org)
        session.flush()
    return org


def create_project(
    session: Session,
    box: SecretBox,
    *,
    name: str,
    repository: str,
    clone_url: str,
    webhook_secret: str,
    bot_login: str,
    base_branch: str = "main",
    trigger_label: str = "gaffer",
    organization: str = "default",
    agents: Sequence[AgentSetup] = (),
) -> Project:
    """Create a project with its agents and triggers; the secret is stored encrypted.

    Raises :class:`ProjectExistsError` when ``name`` is taken, and :class:`ValueError` when
    ``repository`` is not of the form ``owner/repo``.
    """
    if repository.count("/") != 1 or not all(repository.split("/")):
        raise ValueError(f"repository must look like owner/repo, got {repository!r}")
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise ProjectExistsError(f"a project named {name!r} already exists")
    org = get_or_create_organization(session, organization)
    project = Project(
        organization=org,
        name=name,
        repository=repository,
        clone_url=clone_url,
        base_branch=base_branch,
        webhook_secret_encrypted=box.encrypt(webhook_secret),
        bot_login=bot_login,
        trigger_label=trigger_label,
    )
    for agent in agents:
        project.agents.append(
            AgentConfig(
                agent_type=agent.agent_type,
                engine=agent.engine,
                engine_settings=dict(agent.engine_settings),
                overrides=dict(agent.overrides),
                enabled=True,
            )
        )
        for event in agent.events:
            project.triggers.append(
                TriggerConfig(agent_type=agent.agent_type, event=event, enabled=True)
            )
    session.add(project)
    session.flush()
    return project


def get_project(session: Session, name_or_id: str) -> Project:
    """The project with this name or id, with agents and triggers loaded.

    Raises :class:`ProjectNotFoundError`.
    """
    project = session.scalar(
        select(Project)
        .where(or_(Project.name == name_or_id, Project.id == name_or_id))
        .options(selectinload(Project.agents), selectinload(Project.triggers))
    )
    if project is None:
        raise ProjectNotFoundError(f"no project named {name_or_id!r}")
    return project


def list_projects(session: Session) -> list[Project]:
    """All projects, by name, with agents and triggers loaded."""
    return list(
        session.scalars(
            select(Project)
            .order_by(Project.name)
            .options(selectinload(Project.agents), selectinload(Project.triggers))
        )
    )


def load_project_snapshots(session: Session, box: SecretBox) -> list[ProjectSnapshot]:
    """Every project as a :class:`ProjectSnapshot` (secrets decrypted), for ingest."""
    return [ProjectSnapshot.of(p, box) for p in list_projects(session)]
