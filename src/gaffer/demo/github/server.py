"""A local GitHub stand-in: a real HTTP server on 127.0.0.1 (Starlette under uvicorn, in a
thread) answering the REST operations gaffer uses, as GitHub does, for ``gaffer demo`` (and,
extended with contract checks and fault injection, for the tests: ``tests/support/
fake_github``).

Routes are the path templates of GitHub's own description (:mod:`.description`); a call to
any other path is answered 404 and recorded in :attr:`GitHubStandIn.violations`, as is a
handler's crash (answered 500). Auth is GitHub's (:mod:`.auth`): app JWTs, installation
tokens narrowed to repositories and permissions, PATs. ``/{owner}/{repo}.git/...`` is git
smart HTTP through ``git http-backend`` (:mod:`.git_http`). It never touches the network
beyond its loopback port.
"""

from __future__ import annotations

import asyncio
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

from gaffer.demo.github import auth, git_http
from gaffer.demo.github import handlers_checks as _checks  # noqa: F401 (registers)
from gaffer.demo.github import handlers_pulls as _pulls  # noqa: F401 (registers)
from gaffer.demo.github.calls import Answer, Call, HttpError, Violation
from gaffer.demo.github.description import Description
from gaffer.demo.github.handlers import HANDLERS
from gaffer.demo.github.render import Renderer
from gaffer.demo.github.seeding import Seeding
from gaffer.demo.github.state import (
    CheckRun,
    Repository,
    State,
    Token,
)

DOCS = "https://docs.github.com/rest"


class GitHubStandIn(Seeding):
    """A GitHub stand-in on a free loopback port; bare repositories live under ``root/git``.
    Use :meth:`start` / :meth:`stop` (or ``with``). ``api_url`` is the REST base URL (pass it
    as githubkit's ``base_url``), ``web_url`` the web/git base
    (``{web_url}/{owner}/{repo}.git``). ``app`` is the GitHub App it knows (a fresh RSA key
    by default). Subclasses check traffic with :meth:`request_errors` and
    :meth:`check_response` and replace answers with :meth:`intercept`."""

    def __init__(self, root: Path, app: auth.App | None = None) -> None:
        self.root = root
        self.contract = self.description()
        self.state = State()
        self.app = app or auth.App.generate()
        self.app_owner = "gaffer-org"
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

    def description(self) -> Description:
        """The description routes and instances come from (a subclass may validate with it)."""
        return Description()

    # --- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> GitHubStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> GitHubStandIn:
        """Serve in a daemon thread; returns self once it listens. Raises ``RuntimeError``
        when uvicorn does not start within 10 s."""
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
                raise RuntimeError("the GitHub stand-in did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving (without waiting for calls still held) and close the socket."""
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True  # do not wait for calls held by a hang fault
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()

    # --- helpers for handlers -------------------------------------------------------------

    def sign_log_url(self, repo: Repository, run: CheckRun) -> str:
        """The signed URL the job-logs redirect points at (as GitHub's expiring URLs)."""
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

    async def intercept(self, method: str, path: str) -> tuple[Answer | None, float]:
        """(an answer to send instead of handling the call, seconds to hold the answer after
        handling it). The stand-in handles every call at once: ``(None, 0.0)``."""
        return None, 0.0

    def intercept_git(self, request: Request) -> Response | None:
        """A response to send instead of serving a git smart HTTP request (None: serve it).
        The stand-in serves every one."""
        return None

    def request_errors(self, request: Request, body: bytes, ctype: str) -> list[str]:
        """What is wrong with a request against GitHub's contract (a non-empty answer is
        refused 422 and recorded). The stand-in checks only what its handlers need."""
        return []

    def check_response(
        self, template: str, request: Request, answer: Answer, response: Response
    ) -> None:
        """Check an answer before it is sent (record breaches in :attr:`violations`)."""

    async def _handle(self, template: str, request: Request) -> Response:
        method = request.method
        path = request.url.path
        body = await request.body()
        replaced, hang_after = await self.intercept(method, path)
        answer: Answer
        request_json: Any = None
        if replaced is not None:
            answer = replaced
        else:
            ctype = request.headers.get("content-type", "application/json" if body else "")
            errors = self.request_errors(request, body, ctype or "application/json")
            if body:
                try:
                    request_json = json.loads(body)
                except ValueError:
                    request_json = None
            if errors:
                self.violations.append(Violation("request", method, path, None, "\n".join(errors)))
                answer = error_answer(
                    422,
                    "Invalid request (breaks GitHub's description): " + errors[0].splitlines()[0],
                )
            else:
                answer = await run_in_threadpool(self._dispatch, template, request, request_json)
        if hang_after:
            await asyncio.sleep(hang_after)  # done, but the caller hears nothing for a while
        response = self._respond(answer)
        self.check_response(template, request, answer, response)
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
            return error_answer(exc.status, exc.message)
        except HttpError as exc:
            return error_answer(exc.status, exc.message, exc.errors)
        except Exception as exc:  # a bug of the fake itself: fail the test, answer 500
            self.violations.append(
                Violation(
                    "fake", request.method, request.url.path, 500, f"{type(exc).__name__}: {exc}"
                )
            )
            return error_answer(500, "GitHub stand-in error")

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
        answer = error_answer(404, "Not Found")
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
        refused = self.intercept_git(request)
        if refused is not None:
            return refused
        body = await request.body()
        return await run_in_threadpool(
            git_http.serve, self.state, repo, request.path_params["rest"], request, body
        )


def error_answer(status: int, message: str, errors: list[Any] | None = None) -> Answer:
    """GitHub's error answer: ``{"message", "documentation_url", "status"}`` (and
    ``errors`` for a 422)."""
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors is not None:
        body["errors"] = errors
    return Answer(status=status, body=body)
