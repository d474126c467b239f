"""The authorization rule of ``/api/v1``: a resource belongs to the organization of its
project, and the caller's role there decides (:meth:`Principal.require`).

A resource of an organization the caller has no role in answers exactly like one that does
not exist (404, same message), so its existence is not revealed.
"""

from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload

from gaffer.accounts.errors import NotFoundError
from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role
from gaffer.store.models import Project, Run


def no_project(name_or_id: str) -> NotFoundError:
    """The one answer for an unknown project and another organization's."""
    return NotFoundError(f"no project named {name_or_id!r}")


def no_run(run_id: str) -> NotFoundError:
    """The one answer for an unknown run and another organization's."""
    return NotFoundError(f"no run {run_id!r}")


def visible_projects(query: Select[Project], principal: Principal) -> Select[Project]:
    """``query`` limited to the projects of the caller's organizations."""
    visible = principal.visible_organizations()
    if visible is None:
        return query
    return query.where(Project.organization_id.in_(list(visible)))


def project_for(session: Session, principal: Principal, name_or_id: str, needed: Role) -> Project:
    """The project with this name or id if the caller has ``needed`` in its organization
    (agents and triggers loaded). Raises :class:`NotFoundError` and ``ForbiddenError``."""
    project = session.scalar(
        select(Project)
        .where((Project.name == name_or_id) | (Project.id == name_or_id))
        .options(selectinload(Project.agents), selectinload(Project.triggers))
    )
    if project is None or principal.role_in(project.organization_id) is None:
        raise no_project(name_or_id)
    principal.require(project.organization_id, needed, f"project {name_or_id!r}")
    return project


def run_row_for(session: Session, principal: Principal, run_id: str) -> Run | None:
    """The run row with this id, or the only one of the caller's organizations whose id starts
    with ``run_id`` (4+ characters); None when there is none (it may wait in the burst buffer).
    Raises :class:`NotFoundError` for another organization's run, and
    :class:`gaffer.store.runs.AmbiguousRunIdError` for a prefix matching several of the
    caller's runs."""
    from gaffer.store.runs import AmbiguousRunIdError

    run = session.get(Run, run_id)
    if run is not None:
        if principal.role_in(_organization_of(session, run.project_id)) is None:
            raise no_run(run_id)
        return run
    if len(run_id) < 4:
        return None
    query = select(Run).join(Project).where(Run.id.startswith(run_id, autoescape=True)).limit(2)
    visible = principal.visible_organizations()
    if visible is not None:
        query = query.where(Project.organization_id.in_(list(visible)))
    matches = list(session.scalars(query))
    if len(matches) > 1:
        raise AmbiguousRunIdError(f"run id prefix {run_id!r} matches several runs")
    return matches[0] if matches else None


def _organization_of(session: Session, project_id: str) -> str | None:
    return session.scalar(select(Project.organization_id).where(Project.id == project_id))


def require_on_project(
    session: Session, principal: Principal, project_id: str, needed: Role, what: str
) -> str:
    """The organization id of project ``project_id`` after checking the caller has ``needed``
    there. Raises :class:`NotFoundError` (``no <what>``) and ``ForbiddenError``."""
    organization_id = _organization_of(session, project_id)
    if organization_id is None or principal.role_in(organization_id) is None:
        raise NotFoundError(f"no {what}")
    principal.require(organization_id, needed, what)
    return organization_id
