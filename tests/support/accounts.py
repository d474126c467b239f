"""Two organizations with users of every role, their tokens, projects, runs and deliveries,
for the API tests (``/api/v1``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import update

from gaffer.accounts.models import ApiToken
from gaffer.accounts.principal import Principal
from gaffer.accounts.roles import Role
from gaffer.accounts.tokens import create_token, revoke_token
from gaffer.accounts.users import create_user, find_user, principal_for
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.deliveries import record_delivery
from gaffer.store.models import Run, RunStatus, new_id, utcnow
from gaffer.store.projects import create_project, get_or_create_organization
from gaffer.store.runs import append_logs
from gaffer.triggers.github import default_agent_setups

PASSWORD = "correct horse battery"
LOCAL = Principal.local()


@dataclass
class World:
    """What :func:`seed` made: organization ids, user ids by email, tokens by principal name
    (``member``, ``admin``, ``superadmin``, ``other_admin``, ``revoked``, ``expired``),
    projects and runs by organization (``acme`` is the one the member and admin are in)."""

    orgs: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, str] = field(default_factory=dict)
    projects: dict[str, str] = field(default_factory=dict)
    runs: dict[str, str] = field(default_factory=dict)


def _user(db: Database, email: str, org: str | None, role: Role | None, **kw: bool) -> str:
    with db.session() as session:
        return create_user(
            session, LOCAL, email=email, password=PASSWORD, organization_id=org, role=role, **kw
        ).id


def _token(db: Database, email: str, role: Role, name: str = "t") -> tuple[str, str]:
    with db.session() as session:
        user = find_user(session, email)
        assert user is not None
        token, plain = create_token(session, principal_for(user, "api"), user, name=name, role=role)
        return token.id, plain


def seed(db: Database, box: SecretBox) -> World:
    """Organizations ``acme`` and ``other``; in acme a member, an admin and a victim
    (``victim@acme.test``, a member whose role tests change), in other an admin; a superadmin;
    a project, a SUCCEEDED run with logs, and a delivery in each organization."""
    world = World()
    with db.session() as session:
        for name in ("acme", "other"):
            world.orgs[name] = get_or_create_organization(session, name).id
    acme, other = world.orgs["acme"], world.orgs["other"]
    people = {
        "member": ("member@acme.test", acme, Role.MEMBER),
        "admin": ("admin@acme.test", acme, Role.ADMIN),
        "other_admin": ("admin@other.test", other, Role.ADMIN),
    }
    for name, (email, org, role) in people.items():
        world.users[email] = _user(db, email, org, role)
        world.token_ids[name], world.tokens[name] = _token(db, email, role)
    world.users["victim@acme.test"] = _user(db, "victim@acme.test", acme, Role.MEMBER)
    world.users["root@gaffer.test"] = _user(db, "root@gaffer.test", None, None, superadmin=True)
    world.token_ids["superadmin"], world.tokens["superadmin"] = _token(
        db, "root@gaffer.test", Role.SUPERADMIN
    )
    world.token_ids["revoked"], world.tokens["revoked"] = _token(
        db, "admin@acme.test", Role.ADMIN, "revoked"
    )
    world.token_ids["expired"], world.tokens["expired"] = _token(
        db, "admin@acme.test", Role.ADMIN, "expired"
    )
    with db.session() as session:
        revoke_token(session, LOCAL, world.token_ids["revoked"])
        session.execute(
            update(ApiToken)
            .where(ApiToken.id == world.token_ids["expired"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    for name in ("acme", "other"):
        with db.session() as session:
            project = create_project(
                session,
                box,
                name=f"{name}-project",
                repository=f"{name}/repo",
                clone_url="/nonexistent",
                webhook_secret="s" * 16,
                bot_login="bot",
                organization=name,
                agents=default_agent_setups("command", {"command": "true"}),
            )
            run_id = new_id()
            session.add(
                Run(
                    id=run_id,
                    project_id=project.id,
                    agent_type="implementation",
                    work_item="7",
                    trigger="manual:manual",
                    status=RunStatus.SUCCEEDED,
                    started_at=utcnow(),
                    finished_at=utcnow(),
                    job_data={"task": {"title": f"{name} work", "body": ""}},
                )
            )
            session.flush()
            append_logs(session, run_id, [("engine", f"{name} log line", utcnow())])
            record_delivery(
                session,
                provider="github",
                status_code=202,
                decision="queued",
                reason=f"{name} delivery",
                event="issues",
                delivery_id=f"{name}-delivery",
                project_id=project.id,
                run_ids=[run_id],
            )
            world.projects[name] = project.id
            world.runs[name] = run_id
    return world
