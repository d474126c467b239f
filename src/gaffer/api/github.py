"""``/api/v1/projects/{name}/github``: a project's GitHub credentials (an App or a token),
write-only. The masked view (member); set (admin of the project's organization), checked
before anything is written and audited in its transaction without the secret. Checks and
views are :mod:`gaffer.manage.github`', as ``gaffer github`` prints them."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gaffer.accounts.errors import ForbiddenError, NotFoundError
from gaffer.accounts.roles import Role
from gaffer.api.answers import as_given
from gaffer.api.deps import Caller, CallerDep, ServicesDep
from gaffer.api.scope import project_for
from gaffer.api.services import ApiServices
from gaffer.manage import github
from gaffer.providers.github_api.credentials import Credentials

router = APIRouter(prefix="/projects", tags=["github"])


class GitHubCredentialsOut(BaseModel):
    """The masked credentials: ``kind`` ``app`` (``app_id``, ``installation_id``,
    ``private_key``) or ``token`` (``login``, ``token``); the secret is never shown."""

    kind: str
    api_url: str
    app_id: int | None = None
    installation_id: int | None = None
    private_key: str | None = None
    login: str | None = None
    token: str | None = None
    updated_at: str


class GitHubSet(BaseModel):
    """Credentials stored: the project's name and the masked view."""

    project: str
    credentials: GitHubCredentialsOut


class GitHubAppIn(BaseModel):
    """A GitHub App: its id, its private key (PEM), optionally its installation id (learned
    from webhooks otherwise) and the REST root (GitHub Enterprise Server; github.com when
    omitted)."""

    app_id: int
    private_key_pem: str
    installation_id: int | None = None
    api_url: str | None = None


class GitHubTokenIn(BaseModel):
    """A token (fine-grained PAT); ``login``, the account it acts as, becomes the project's
    bot login."""

    token: str
    login: str | None = None
    api_url: str | None = None


@router.get("/{name}/github", response_model=GitHubCredentialsOut)
def show_github(name: str, caller: CallerDep, svc: ServicesDep) -> JSONResponse:
    """The project's GitHub credentials, masked (404 when none are set)."""
    with svc.db.session() as session:
        shown = github.shown(session, project_for(session, caller.principal, name, Role.MEMBER))
    if shown is None:
        raise NotFoundError(github.none_set(name))
    return as_given(shown)


@router.put("/{name}/github/app", response_model=GitHubSet)
def set_github_app(
    name: str, body: GitHubAppIn, caller: CallerDep, svc: ServicesDep
) -> JSONResponse:
    """Use a GitHub App for the project's GitHub calls and the workers' git (admin)."""
    creds = github.app_credentials(body.app_id, body.private_key_pem, body.installation_id)
    return _store(name, creds, body.api_url, caller, svc)


@router.put("/{name}/github/token", response_model=GitHubSet)
def set_github_token(
    name: str, body: GitHubTokenIn, caller: CallerDep, svc: ServicesDep
) -> JSONResponse:
    """Use a token for the project's GitHub calls and the workers' git (admin)."""
    return _store(name, github.token_credentials(body.token, body.login), body.api_url, caller, svc)


def _store(
    name: str, creds: Credentials, api_url: str | None, caller: Caller, svc: ApiServices
) -> JSONResponse:
    url = github.api_url(api_url)
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.ADMIN)
        if url is not None and not caller.principal.is_superadmin:
            # The REST root decides where gaffer sends the project's credentials and where its
            # workers' git connects (an internal address, say): the installation's decision.
            current = github.shown(session, project)
            if current is None or current["api_url"] != url:
                raise ForbiddenError(
                    "a GitHub API root other than the project's current one (api_url) needs the"
                    " superadmin role: it decides where gaffer and its workers connect"
                )
        shown = github.store(
            session, svc.box, caller.principal, project, creds, url, request_id=caller.request_id
        )
        return as_given({"project": project.name, "credentials": shown})
