"""The fake's REST operations, by ``operationId``. Each runs under the state lock and returns
an :class:`Answer` (or raises :class:`HttpError`); the server validates both sides."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from gaffer.demo.github import auth
from gaffer.demo.github.calls import Answer, Call, HttpError
from gaffer.demo.github.state import (
    Comment,
    Issue,
    PullRequest,
    Reaction,
    Repository,
    now_iso,
)

if TYPE_CHECKING:
    from gaffer.demo.github.server import GitHubStandIn

Handler = Callable[["GitHubStandIn", Call], Answer]
HANDLERS: dict[str, Handler] = {}


def op(operation_id: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[operation_id] = fn
        return fn

    return register


def _page(call: Call, items: list[Any]) -> list[Any]:
    per_page = int(call.query.get("per_page", "30"))
    page = int(call.query.get("page", "1"))
    return items[(page - 1) * per_page : page * per_page]


def _issue(repo: Repository, number: int) -> Issue:
    issue = repo.issues.get(number)
    if issue is None:
        raise HttpError(404, "Not Found")
    return issue


def _pull(repo: Repository, number: int) -> PullRequest:
    pull = repo.pulls.get(number)
    if pull is None:
        raise HttpError(404, "Not Found")
    return pull


def _actor(call: Call) -> Any:
    assert call.token is not None
    return call.token.user


# --- apps -----------------------------------------------------------------------------------


@op("apps/get-authenticated")
def get_app(fake: GitHubStandIn, call: Call) -> Answer:
    owner = fake.state.user(fake.app_owner)
    return Answer(
        body=fake.render.c.instance(
            "integration",
            id=fake.app.id,
            slug=fake.app.slug,
            node_id=f"A_{fake.app.id}",
            name=fake.app.slug,
            owner=fake.render.user(owner),
            html_url=f"{fake.web_url}/apps/{fake.app.slug}",
            permissions={
                "contents": "write",
                "issues": "write",
                "pull_requests": "write",
                "checks": "write",
                "metadata": "read",
            },
            events=["issues", "issue_comment", "pull_request", "check_suite"],
        )
    )


@op("apps/create-installation-access-token")
def create_installation_token(fake: GitHubStandIn, call: Call) -> Answer:
    body = call.json or {}
    try:
        token = auth.mint(
            fake.state,
            call.int_param("installation_id"),
            body.get("repositories"),
            body.get("permissions"),
            bot_login=f"{fake.app.slug}[bot]",
            ttl_s=fake.token_ttl_s,
        )
    except auth.AuthError as exc:
        raise HttpError(exc.status, exc.message) from exc
    fake.minted.append(token)
    expires = datetime.fromtimestamp(token.expires_at or time.time(), UTC)
    out: dict[str, Any] = {
        "token": token.value,
        "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "permissions": token.permissions,
        "repository_selection": "selected" if token.repositories is not None else "all",
    }
    return Answer(status=201, body=out)


@op("apps/get-repo-installation")
def get_repo_installation(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    for inst in fake.state.installations.values():
        if inst.account.login.lower() == repo.owner.lower() and repo.name in inst.repositories:
            return Answer(
                body=fake.render.c.instance(
                    "installation",
                    id=inst.id,
                    account=fake.render.user(inst.account),
                    app_id=fake.app.id,
                    app_slug=fake.app.slug,
                    target_id=inst.account.id,
                    target_type="Organization",
                    permissions=inst.permissions,
                    repository_selection="selected",
                    access_tokens_url=(f"{fake.api_url}/app/installations/{inst.id}/access_tokens"),
                    html_url=f"{fake.web_url}/settings/installations/{inst.id}",
                )
            )
    raise HttpError(404, "Not Found")


# --- users and repositories -----------------------------------------------------------------


@op("users/get-authenticated")
def get_user(fake: GitHubStandIn, call: Call) -> Answer:
    assert call.token is not None
    if call.token.kind == "installation":
        raise HttpError(403, "Resource not accessible by integration")
    body = fake.render.user(call.token.user, "private-user")
    body["user_view_type"] = "private"  # the discriminator of GitHub's oneOf
    return Answer(body=body)


@op("repos/get")
def get_repo(fake: GitHubStandIn, call: Call) -> Answer:
    return Answer(body=fake.render.repo(call.need_repo(), "full-repository"))


# --- issues and comments --------------------------------------------------------------------


@op("issues/get")
def get_issue(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    return Answer(body=fake.render.issue(repo, _issue(repo, call.int_param("issue_number"))))


@op("issues/list-comments")
def list_comments(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    number = call.int_param("issue_number")
    _issue(repo, number)
    items = [c for c in repo.comments.values() if c.issue_number == number]
    return Answer(body=[fake.render.comment(repo, c) for c in _page(call, items)])


@op("issues/create-comment")
def create_comment(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    number = call.int_param("issue_number")
    _issue(repo, number)
    comment = Comment(
        id=fake.state.next_id(), issue_number=number, body=call.json["body"], user=_actor(call)
    )
    repo.comments[comment.id] = comment
    return Answer(status=201, body=fake.render.comment(repo, comment))


@op("issues/update-comment")
def update_comment(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    comment = repo.comments.get(call.int_param("comment_id"))
    if comment is None:
        raise HttpError(404, "Not Found")
    comment.body = call.json["body"]
    comment.updated_at = now_iso()
    return Answer(body=fake.render.comment(repo, comment))


def _react(fake: GitHubStandIn, call: Call, subject: tuple[str, int]) -> Answer:
    repo = call.need_repo()
    user = _actor(call)
    content = call.json["content"]
    for old in repo.reactions:
        if old.subject == subject and old.content == content and old.user.login == user.login:
            return Answer(status=200, body=fake.render.reaction(old))
    reaction = Reaction(id=fake.state.next_id(), content=content, user=user, subject=subject)
    repo.reactions.append(reaction)
    return Answer(status=201, body=fake.render.reaction(reaction))


@op("reactions/create-for-issue")
def react_issue(fake: GitHubStandIn, call: Call) -> Answer:
    number = call.int_param("issue_number")
    _issue(call.need_repo(), number)
    return _react(fake, call, ("issue", number))


@op("reactions/create-for-issue-comment")
def react_comment(fake: GitHubStandIn, call: Call) -> Answer:
    comment_id = call.int_param("comment_id")
    if comment_id not in call.need_repo().comments:
        raise HttpError(404, "Not Found")
    return _react(fake, call, ("comment", comment_id))
