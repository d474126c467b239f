"""The ``/api/v1`` app: everything the CLI does, over HTTP, described by the OpenAPI document
FastAPI publishes at ``/api/v1/openapi.json`` (interactive docs at ``/api/v1/docs``).

Mounted on the ingest app by :func:`mount_v1`. Authentication: :mod:`gaffer.api.deps`;
authorization: :mod:`gaffer.api.scope`; errors: :mod:`gaffer.api.errors`. Every answer carries
``X-Request-ID``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from starlette.routing import Mount

from gaffer.api import (
    agents,
    audit,
    buffer,
    credentials,
    deliveries,
    github,
    organizations,
    project_images,
    projects,
    run_logs,
    runs,
    session_auth,
    snapshots,
    tokens,
    usage,
    users,
)
from gaffer.api.deps import request_id
from gaffer.api.errors import ERROR_RESPONSES, install_error_handlers
from gaffer.api.services import ApiServices

PREFIX = "/api/v1"


def create_v1_app(services: ApiServices) -> FastAPI:
    """The v1 app on ``services`` (mount it at :data:`PREFIX`)."""
    app = FastAPI(
        title="gaffer API",
        version="1",
        description=(
            "Projects, agents, credentials, runs, logs, deliveries, usage, users, tokens and"
            " the audit log."
        ),
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.services = services
    for module in (
        session_auth,
        projects,
        project_images,
        runs,
        run_logs,
        deliveries,
        organizations,
        users,
        tokens,
        audit,
        buffer,
        snapshots,
        agents,
        credentials,
        github,
        usage,
    ):
        app.include_router(module.router, responses=ERROR_RESPONSES)
    install_error_handlers(app)

    @app.middleware("http")
    async def with_request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = request_id(request)
        response = await call_next(request)
        response.headers["X-Request-ID"] = rid
        return response

    return app


def mount_v1(app: FastAPI, services: ApiServices) -> None:
    """Serve the v1 API under :data:`PREFIX` of ``app``.

    Every path under the prefix goes to the v1 app, even one holding a newline (Starlette's
    mount pattern is not DOTALL), so every answer there has the v1 error shape.
    """
    mount = Mount(PREFIX, app=create_v1_app(services))
    mount.path_regex = re.compile(mount.path_regex.pattern, re.DOTALL)
    app.router.routes.append(mount)
