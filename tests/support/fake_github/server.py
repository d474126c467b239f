"""The fake GitHub: a real HTTP server on 127.0.0.1 (Starlette under uvicorn, in a thread).

Every request to a REST operation is checked against GitHub's description before it is
handled, and every answer before it is sent; a breach is recorded in :attr:`violations` (a
request breach is answered 422, as GitHub would refuse it) and fails the test at the
fixture's teardown. Answers the description does not document for an operation (401 bad
credentials, an injected 5xx, the 403 secondary rate limit) are checked against
``basic-error``. ``/{owner}/{repo}.git/...`` is git smart HTTP through ``git http-backend``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from tests.support.fake_github import auth, git_http
from tests.support.fake_github import handlers_checks as _checks  # noqa: F401 (registers)
from tests.support.fake_github import handlers_pulls as _pulls  # noqa: F401 (registers)
from tests.support.fake_github.calls import Answer, Call, HttpError
from tests.support.fake_github.contract import Contract, Violation
from tests.support.fake_github.faults import Fault, Faults
from tests.support.fake_github.handlers import HANDLERS
from tests.support.fake_github.render import Renderer
from tests.support.fake_github.seeding import Seeding
from tests.support.fake_github.state import (
    CheckRun,
    Repository,
    State,
    Token,
)

DOCS = "https://docs.github.com/rest"


class FakeGitHub(Seeding):
    """A fake GitHub on a free loopback port. Use :meth:`start` / :meth:`stop` (or the
    ``fake_github`` fixture). ``api_url`` is the REST base URL (pass it as githubkit's
    ``base_url``), ``web_url`` the web/git base (``{web_url}/{owner}/{repo}.git``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.contract = Contract()
        self.state = State()
        self.app = auth.App.generate()
        self.app_owner = "gaffer-org"
        self.faults = Faults()
        self.violations: list[Violation] = []
        self.requests: list[tuple[str, str, int, Any]] = []  # method, path, status, json body
        self.minted: list[Token] = []
        self.token_ttl_s = auth.TOKEN_TTL_S
        self._log_key = secrets.token_bytes(16)
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        port = self._sock.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}"
        self.web_url = self.api_url
        self.render = Renderer(self.contract, self.api_url, self.web_url)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._app = self._build()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> FakeGitHub:
        config = uvicorn.Config(
            self._app, log_level="warning", lifespan="off", timeout_keep_alive=30
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake GitHub did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for calls held by a hang fault
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    # --- helpers for handlers -------------------------------------------------------------

    def sign_log_url(self, repo: Repository, run: CheckRun) -> str:
        sig = hmac.new(self._log_key, str(run.id).encode(), hashlib.sha256).hexdigest()[:32]
        return f"{self.web_url}/_logs/{repo.owner}/{repo.name}/{run.id}?sig={sig}"

    def calls(self, operation_path: str, method: str = "GET") -> list[tuple[int, Any]]:
        """The (status, JSON body) of each recorded request to a concrete path."""
        return [(s, b) for m, p, s, b in self.requests if m == method and p == operation_path]

    # --- the ASGI app ---------------------------------------------------------------------

    def _build(self) -> Starlette:
        routes: list[Route] = []
        for template, item in self.contract.doc["paths"].items():
            methods = [m.upper() for m in item if m != "parameters"]
            routes.append(Route(template, self._endpoint(template), methods=methods))
        routes.append(Route("/_logs/{owner}/{repo}/{job_id}", self._logs, methods=["GET"]))
        routes.append(Route("/{owner}/{repo}.git/{rest:path}", self._git, methods=["GET", "POST"]))
        every = ["GET", "POST", "PATCH", "PUT", "DELETE"]
        routes.append(Route("/{rest:path}", self._unknown, methods=every))
        return Starlette(routes=routes)

    def _endpoint(self, template: str) -> Any:
        async def endpoint(request: Request) -> Response:
            return await self._handle(template, request)

        return endpoint

    async def _handle(self, template: str, request: Request) -> Response:
        method = request.method
        path = request.url.path
        body = await request.body()
        fault = self.faults.take(method, path)
        hang_after = 0.0
        if fault is not None and fault.kind == "hang":
            await asyncio.sleep(fault.hang_s)
            fault = None
        elif fault is not None and fault.kind == "hang_after":
            hang_after, fault = fault.hang_s, None
        answer: Answer
        request_json: Any = None
        if fault is not None:
            answer = self._fault_answer(fault)
        else:
            ctype = request.headers.get("content-type", "application/json" if body else "")
            errors = self.contract.request_errors(
                method,
                path,
                request.query_params,
                request.headers,
                body,
                ctype or "application/json",
            )
            if body:
                try:
                    request_json = json.loads(body)
                except ValueError:
                    request_json = None
            if errors:
                self.violations.append(Violation("request", method, path, None, "\n".join(errors)))
                answer = _error(
                    422,
                    "Invalid request (breaks GitHub's description): " + errors[0].splitlines()[0],
                )
            else:
                answer = await run_in_threadpool(self._dispatch, template, request, request_json)
        if hang_after:
            await asyncio.sleep(hang_after)  # done, but the caller hears nothing for a while
        response = self._respond(answer)
        self._check_response(template, request, answer, response)
        self.requests.append((method, path, response.status_code, request_json))
        return response

    def _dispatch(self, template: str, request: Request, request_json: Any) -> Answer:
        op = self.contract.operation(request.method, template)
        operation_id = op["operationId"]
        params = dict(request.path_params)
        try:
            with self.state.lock:
                token = None
                if operation_id in auth.APP_JWT_OPERATIONS:
                    auth.check_app_jwt(self.app, request.headers.get("authorization"))
                else:
                    token = auth.find_token(self.state, request.headers.get("authorization"))
                repo = None
                if "owner" in params:
                    repo = self.state.repo(params["owner"], params["repo"])
                    if repo is None:
                        raise HttpError(404, "Not Found")
                    if token is not None:
                        auth.authorize(token, repo.name, auth.REQUIRED.get(operation_id))
                call = Call(
                    operation_id=operation_id,
                    params=params,
                    query=dict(request.query_params),
                    json=request_json,
                    headers={k.lower(): v for k, v in request.headers.items()},
                    token=token,
                    repo=repo,
                )
                return HANDLERS[operation_id](self, call)
        except auth.AuthError as exc:
            return _error(exc.status, exc.message)
        except HttpError as exc:
            return _error(exc.status, exc.message, exc.errors)
        except Exception as exc:  # a bug of the fake itself: fail the test, answer 500
            self.violations.append(
                Violation(
                    "fake", request.method, request.url.path, 500, f"{type(exc).__name__}: {exc}"
                )
            )
            return _error(500, "fake GitHub error")

    def _fault_answer(self, fault: Fault) -> Answer:
        if fault.kind == "rate_limit":
            answer = _error(
                403,
                "You have exceeded a secondary rate limit. Please wait a few "
                "minutes before you try again.",
            )
            answer.headers["Retry-After"] = str(fault.retry_after_s)
            return answer
        if fault.kind == "primary_rate_limit":
            answer = _error(403, "API rate limit exceeded for installation.")
            answer.headers.update(
                {
                    "X-RateLimit-Limit": "5000",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(time.time()) + fault.retry_after_s),
                }
            )
            return answer
        return _error(fault.status, "Server Error (injected)")

    def _respond(self, answer: Answer) -> Response:
        if answer.text is not None:
            return Response(
                answer.text,
                status_code=answer.status,
                headers=answer.headers,
                media_type=answer.media_type,
            )
        data = b"" if answer.body is None else json.dumps(answer.body).encode()
        return Response(
            data, status_code=answer.status, headers=answer.headers, media_type=answer.media_type
        )

    def _check_response(
        self, template: str, request: Request, answer: Answer, response: Response
    ) -> None:
        method, path = request.method, request.url.path
        if self.contract.declares(method, template, answer.status):
            errors = self.contract.response_errors(
                method,
                path,
                request.query_params,
                request.headers,
                answer.status,
                response.headers,
                bytes(response.body),
                response.headers.get("content-type", ""),
            )
        elif answer.status >= 400:
            errors = self.contract.error_body_errors(answer.body)
        else:
            errors = [f"status {answer.status} is not documented for {method} {template}"]
        if errors:
            self.violations.append(
                Violation("response", method, path, answer.status, "\n".join(errors))
            )

    async def _unknown(self, request: Request) -> Response:
        """A call to an operation the pruned description lacks: add it to OPERATIONS in
        scripts/prune-github-openapi (and a handler), or stop calling it."""
        self.violations.append(
            Violation(
                "request",
                request.method,
                request.url.path,
                404,
                "no such operation in the pruned description (scripts/prune-github-openapi)",
            )
        )
        answer = _error(404, "Not Found")
        return Response(json.dumps(answer.body), status_code=404, media_type=answer.media_type)

    async def _logs(self, request: Request) -> Response:
        owner, name = request.path_params["owner"], request.path_params["repo"]
        job_id = int(request.path_params["job_id"])
        repo = self.state.repo(owner, name)
        run = repo.check_runs.get(job_id) if repo else None
        if repo is None or run is None or run.log is None:
            return PlainTextResponse("Not Found", status_code=404)
        expected = self.sign_log_url(repo, run).split("sig=", 1)[1]
        if not hmac.compare_digest(expected, request.query_params.get("sig", "")):
            return PlainTextResponse("Signature mismatch", status_code=403)
        return PlainTextResponse(run.log)

    async def _git(self, request: Request) -> Response:
        owner, name = request.path_params["owner"], request.path_params["repo"]
        repo = self.state.repo(owner, name)
        if repo is None or repo.git_dir is None:
            return PlainTextResponse("Repository not found.\n", status_code=404)
        body = await request.body()
        target = f"{request.url.path}?{request.url.query}"
        fault = self.faults.take(request.method, target, ("echo_credentials",))
        if fault is not None:
            header = request.headers.get("authorization", "")
            scheme, _, value = header.partition(" ")
            decoded = ""
            if scheme.lower() == "basic":
                decoded = base64.b64decode(value).decode(errors="replace")
            text = f"refused: you sent Authorization: {header} (user:token {decoded})\n"
            return PlainTextResponse(text, status_code=403)
        return await run_in_threadpool(
            git_http.serve, self.state, repo, request.path_params["rest"], request, body
        )


def _error(status: int, message: str, errors: list[Any] | None = None) -> Answer:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors is not None:
        body["errors"] = errors
    return Answer(status=status, body=body)
