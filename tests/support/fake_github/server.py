"""The fake GitHub of the tests: the shipped stand-in (:mod:`gaffer.demo.github.server`) held
to GitHub's published description, with injectable failures.

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
import time
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from gaffer.demo.github import auth
from gaffer.demo.github.calls import Answer, Violation
from gaffer.demo.github.server import DOCS, GitHubStandIn, error_answer
from tests.support.fake_github.contract import Contract
from tests.support.fake_github.faults import Fault, Faults
from tests.support.fake_github.seeding import FaultInjection

__all__ = ["DOCS", "FakeGitHub"]


class FakeGitHub(FaultInjection, GitHubStandIn):
    """A fake GitHub on a free loopback port. Use :meth:`start` / :meth:`stop` (or the
    ``fake_github`` fixture). ``api_url`` is the REST base URL (pass it as githubkit's
    ``base_url``), ``web_url`` the web/git base (``{web_url}/{owner}/{repo}.git``)."""

    contract: Contract

    def __init__(self, root: Path, app: auth.App | None = None) -> None:
        self.faults = Faults()
        super().__init__(root, app)

    def description(self) -> Contract:
        return Contract()

    async def intercept(self, method: str, path: str) -> tuple[Answer | None, float]:
        fault = self.faults.take(method, path)
        if fault is None:
            return None, 0.0
        if fault.kind == "hang":
            await asyncio.sleep(fault.hang_s)
            return None, 0.0
        if fault.kind == "hang_after":
            return None, fault.hang_s
        return self._fault_answer(fault), 0.0

    def intercept_git(self, request: Request) -> Response | None:
        target = f"{request.url.path}?{request.url.query}"
        fault = self.faults.take(request.method, target, ("echo_credentials",))
        if fault is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        decoded = ""
        if scheme.lower() == "basic":
            decoded = base64.b64decode(value).decode(errors="replace")
        text = f"refused: you sent Authorization: {header} (user:token {decoded})\n"
        return PlainTextResponse(text, status_code=403)

    def request_errors(self, request: Request, body: bytes, ctype: str) -> list[str]:
        return self.contract.request_errors(
            request.method, request.url.path, request.query_params, request.headers, body, ctype
        )

    def _fault_answer(self, fault: Fault) -> Answer:
        if fault.kind == "rate_limit":
            answer = error_answer(
                403,
                "You have exceeded a secondary rate limit. Please wait a few "
                "minutes before you try again.",
            )
            answer.headers["Retry-After"] = str(fault.retry_after_s)
            return answer
        if fault.kind == "primary_rate_limit":
            answer = error_answer(403, "API rate limit exceeded for installation.")
            answer.headers.update(
                {
                    "X-RateLimit-Limit": "5000",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset": str(int(time.time()) + fault.retry_after_s),
                }
            )
            return answer
        return error_answer(fault.status, "Server Error (injected)")

    def check_response(
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
