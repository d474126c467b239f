"""The ingest FastAPI app: webhook endpoints, ``/healthz``, ``/metrics`` and the JSON API.

:func:`create_app` takes already-built services, so the same app runs inside ``gaffer up``
(next to the dispatcher) and alone (``gaffer up --role ingest``). ``/metrics`` (unless
``GAFFER_METRICS_ENABLED=false``) is the Prometheus text format of :mod:`gaffer.buffer.metrics`;
``/api`` exists only with ``GAFFER_API_TOKEN`` (:mod:`gaffer.api.app`).
"""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from gaffer.api.app import mount_api
from gaffer.buffer.access import RunAccess
from gaffer.buffer.metrics import render
from gaffer.buffer.scripts import BufferStats, BufferStore
from gaffer.ingest.github import GitHubIngest

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def create_app(
    github: GitHubIngest,
    *,
    buffer: BufferStore | None = None,
    access: RunAccess | None = None,
) -> FastAPI:
    """The ingest app around ``github`` (its db and redis are used by ``/healthz`` too).

    ``buffer`` feeds the gauges of ``/metrics``; ``access`` serves the JSON API (mounted only
    when ``GAFFER_API_TOKEN`` is set).
    """
    app = FastAPI(title="gaffer ingest", docs_url=None, redoc_url=None)
    settings = github.settings

    @app.post("/webhooks/github")
    async def github_webhook(request: Request) -> JSONResponse:
        """A GitHub delivery for any project (the signature picks the project)."""
        answer = await github.handle(request)
        return JSONResponse(answer.body(), status_code=answer.status_code)

    @app.post("/webhooks/github/{project}")
    async def github_project_webhook(project: str, request: Request) -> JSONResponse:
        """A GitHub delivery for one named project."""
        answer = await github.handle(request, project=project)
        return JSONResponse(answer.body(), status_code=answer.status_code)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Redis and database reachability: 200 when both answer, else 503."""
        checks: dict[str, str] = {}
        try:
            await github.redis.ping()
            checks["redis"] = "ok"
        except RedisError as exc:
            checks["redis"] = f"error: {exc}"
        try:
            await asyncio.to_thread(github.db.ping)
            checks["database"] = "ok"
        except SQLAlchemyError as exc:
            checks["database"] = f"error: {exc.__class__.__name__}"
        healthy = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", **checks},
            status_code=200 if healthy else 503,
        )

    if settings.metrics_enabled:

        @app.get("/metrics")
        async def metrics() -> Response:
            """Prometheus metrics: this process's counters and the buffer's gauges."""
            stats = BufferStats({}, {}, 0, 0)
            if buffer is not None:
                try:
                    stats = await buffer.stats()
                except RedisError:
                    return Response("redis unavailable\n", status_code=503)
            return Response(render(stats), media_type=METRICS_CONTENT_TYPE)

    if access is not None and settings.api_token:
        mount_api(app, access, settings.api_token, settings.buffer_tag_cap)

    if settings.bench_endpoints:

        @app.post("/bench/bare")
        async def bench_bare(request: Request) -> Response:
            """Benchmark baseline: read the body, answer 202, nothing else."""
            await request.body()
            return Response(status_code=202)

    return app
