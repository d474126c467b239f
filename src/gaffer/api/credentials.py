"""``/api/v1/projects/{name}/credentials``: a project's named secrets, write-only. Reads
(member) show names and masked values; set and delete (admin of the project's organization)
are audited in their transaction without the value. Views and writes are
:mod:`gaffer.manage.credentials`', as ``gaffer credentials`` prints them."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from gaffer.accounts.errors import NotFoundError
from gaffer.accounts.roles import Role
from gaffer.api.answers import as_given
from gaffer.api.deps import CallerDep, ServicesDep
from gaffer.api.scope import project_for
from gaffer.manage.credentials import credential_rows, put_credential, remove_credential
from gaffer.store.credentials import CredentialError, validate_name

router = APIRouter(prefix="/projects", tags=["credentials"])


class CredentialOut(BaseModel):
    """A credential as listings show it: its name, its masked value, when it was set."""

    name: str
    masked: str
    updated_at: str


class CredentialIn(BaseModel):
    """A credential's value (surrounding whitespace is dropped; at most 64 KiB). Never shown
    again, nor echoed in an error."""

    value: str


@router.get("/{name}/credentials", response_model=list[CredentialOut])
def list_credentials(name: str, caller: CallerDep, svc: ServicesDep) -> JSONResponse:
    """The project's credentials by name, masked."""
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.MEMBER)
        return as_given(credential_rows(session, svc.box, project))


@router.put("/{name}/credentials/{credential}", response_model=CredentialOut)
def set_credential(
    name: str, credential: str, body: CredentialIn, caller: CallerDep, svc: ServicesDep
) -> JSONResponse:
    """Create or replace a credential (admin; 400 for a bad name or an empty value)."""
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.ADMIN)
        row = put_credential(
            session,
            svc.box,
            caller.principal,
            project,
            credential,
            body.value,
            request_id=caller.request_id,
        )
        return as_given(row)


@router.delete("/{name}/credentials/{credential}", status_code=204, response_class=Response)
def delete_credential(name: str, credential: str, caller: CallerDep, svc: ServicesDep) -> Response:
    """Delete a credential (admin; 404 when there is none)."""
    with svc.db.session() as session:
        project = project_for(session, caller.principal, name, Role.ADMIN)
        validate_name(credential)
        try:
            remove_credential(
                session, caller.principal, project, credential, request_id=caller.request_id
            )
        except CredentialError as exc:
            raise NotFoundError(str(exc)) from None
    return Response(status_code=204)
