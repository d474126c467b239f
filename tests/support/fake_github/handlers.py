"""The fake's REST operations, by ``operationId``. Each runs under the state lock and returns
an :class:`Answer` (or raises :class:`HttpError`); the server validates both sides."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.support.fake_github import auth, diffs
from tests.support.fake_github.calls import Answer, Call, HttpError
from tests.support.fake_github.state import (
    CheckRun,
    Comment,
    Issue,
    PullRequest,
    Reaction,
    Repository,
    Review,
    ReviewComment,
    now_iso,
)

if TYPE_CHECKING:
    from tests.support.fake_github.server import FakeGitHub

Handler = Callable[["FakeGitHub", Call], Answer]
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
def get_app(fake: FakeGitHub, call: Call) -> Answer:
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
def create_installation_token(fake: FakeGitHub, call: Call) -> Answer:
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
def get_repo_installation(fake: FakeGitHub, call: Call) -> Answer:
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
def get_user(fake: FakeGitHub, call: Call) -> Answer:
    assert call.token is not None
    if call.token.kind == "installation":
        raise HttpError(403, "Resource not accessible by integration")
    body = fake.render.user(call.token.user, "private-user")
    body["user_view_type"] = "private"  # the discriminator of GitHub's oneOf
    return Answer(body=body)


@op("repos/get")
def get_repo(fake: FakeGitHub, call: Call) -> Answer:
    return Answer(body=fake.render.repo(call.need_repo(), "full-repository"))


# --- issues and comments --------------------------------------------------------------------


@op("issues/get")
def get_issue(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    return Answer(body=fake.render.issue(repo, _issue(repo, call.int_param("issue_number"))))


@op("issues/list-comments")
def list_comments(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    number = call.int_param("issue_number")
    _issue(repo, number)
    items = [c for c in repo.comments.values() if c.issue_number == number]
    return Answer(body=[fake.render.comment(repo, c) for c in _page(call, items)])


@op("issues/create-comment")
def create_comment(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    number = call.int_param("issue_number")
    _issue(repo, number)
    comment = Comment(
        id=fake.state.next_id(), issue_number=number, body=call.json["body"], user=_actor(call)
    )
    repo.comments[comment.id] = comment
    return Answer(status=201, body=fake.render.comment(repo, comment))


@op("issues/update-comment")
def update_comment(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    comment = repo.comments.get(call.int_param("comment_id"))
    if comment is None:
        raise HttpError(404, "Not Found")
    comment.body = call.json["body"]
    comment.updated_at = now_iso()
    return Answer(body=fake.render.comment(repo, comment))


def _react(fake: FakeGitHub, call: Call, subject: tuple[str, int]) -> Answer:
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
def react_issue(fake: FakeGitHub, call: Call) -> Answer:
    number = call.int_param("issue_number")
    _issue(call.need_repo(), number)
    return _react(fake, call, ("issue", number))


@op("reactions/create-for-issue-comment")
def react_comment(fake: FakeGitHub, call: Call) -> Answer:
    comment_id = call.int_param("comment_id")
    if comment_id not in call.need_repo().comments:
        raise HttpError(404, "Not Found")
    return _react(fake, call, ("comment", comment_id))


# --- pull requests --------------------------------------------------------------------------


@op("pulls/get")
def get_pull(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    if "application/vnd.github.diff" in call.headers.get("accept", ""):
        return Answer(text=pull.diff, media_type="application/vnd.github.diff")
    return Answer(body=fake.render.pull(repo, pull))


@op("pulls/list")
def list_pulls(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    state = call.query.get("state", "open")
    head = call.query.get("head")
    base = call.query.get("base")
    items = []
    for pull in repo.pulls.values():
        current = "closed" if pull.merged else pull.state
        if state != "all" and current != state:
            continue
        if head and f"{repo.owner}:{pull.head_ref}".lower() != head.lower():
            continue
        if base and pull.base_ref != base:
            continue
        items.append(pull)
    return Answer(
        body=[fake.render.pull(repo, p, "pull-request-simple") for p in _page(call, items)]
    )


def _rev(repo: Repository, ref: str) -> str | None:
    if repo.git_dir is None:
        return None
    done = subprocess.run(
        ["git", "-C", str(repo.git_dir), "rev-parse", "--verify", "-q", f"refs/heads/{ref}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or None


@op("pulls/create")
def create_pull(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    body = call.json
    head = str(body["head"]).split(":", 1)[-1]
    base = str(body["base"])
    for pull in repo.pulls.values():
        if pull.head_ref == head and pull.state == "open" and not pull.merged:
            raise HttpError(
                422,
                "Validation Failed",
                [
                    {
                        "resource": "PullRequest",
                        "code": "custom",
                        "message": f"A pull request already exists for {repo.owner}:{head}.",
                    }
                ],
            )
    head_sha, base_sha = _rev(repo, head), _rev(repo, base)
    if head_sha is None or base_sha is None:
        raise HttpError(
            422,
            "Validation Failed",
            [{"resource": "PullRequest", "field": "head", "code": "invalid"}],
        )
    assert repo.git_dir is not None
    diff = subprocess.run(
        ["git", "-C", str(repo.git_dir), "diff", f"{base_sha}...{head_sha}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if not diff:
        raise HttpError(
            422,
            "Validation Failed",
            [
                {
                    "resource": "PullRequest",
                    "code": "custom",
                    "message": f"No commits between {base} and {head}",
                }
            ],
        )
    number = fake.state.next_number(repo)
    repo.issues[number] = Issue(
        number=number,
        title=body.get("title") or head,
        body=body.get("body") or "",
        user=_actor(call),
        is_pull_request=True,
    )
    pull = PullRequest(
        number=number,
        head_ref=head,
        base_ref=base,
        head_sha=head_sha,
        base_sha=base_sha,
        user=_actor(call),
        draft=bool(body.get("draft")),
        diff=diff,
    )
    repo.pulls[number] = pull
    return Answer(status=201, body=fake.render.pull(repo, pull))


@op("pulls/list-files")
def list_files(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    out = []
    for i, f in enumerate(diffs.parse(pull.diff)):
        url = f"{fake.web_url}/{repo.full_name}/blob/{pull.head_sha}/{f.filename}"
        out.append(
            fake.render.c.instance(
                "diff-entry",
                sha=f"{i:040x}",
                filename=f.filename,
                status=f.status,
                additions=f.additions,
                deletions=f.deletions,
                changes=f.additions + f.deletions,
                blob_url=url,
                raw_url=url.replace("/blob/", "/raw/"),
                contents_url=f"{fake.api_url}/repos/{repo.full_name}/contents/{f.filename}",
                patch=f.patch,
            )
        )
    return Answer(body=_page(call, out))


_REVIEW_STATE = {
    "APPROVE": "APPROVED",
    "REQUEST_CHANGES": "CHANGES_REQUESTED",
    "COMMENT": "COMMENTED",
}


@op("pulls/create-review")
def create_review(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    body = call.json or {}
    event = body.get("event")
    text = body.get("body") or ""
    if event in ("REQUEST_CHANGES", "COMMENT") and not text and not body.get("comments"):
        raise HttpError(
            422, "Unprocessable Entity", [f"Review body is required when event is {event}"]
        )
    commit_id = body.get("commit_id") or pull.head_sha
    if event in ("APPROVE", "REQUEST_CHANGES") and pull.user.login == _actor(call).login:
        verb = "approve" if event == "APPROVE" else "request changes on"
        raise HttpError(422, "Unprocessable Entity", [f"Can not {verb} your own pull request"])
    for c in body.get("comments") or []:
        line = c.get("line") or c.get("position")
        if line is None or not diffs.commentable(
            pull.diff, c["path"], int(line), c.get("side", "RIGHT")
        ):
            # GitHub rejects the whole review when one thread's line is outside the diff.
            raise HttpError(
                422,
                "Unprocessable Entity",
                ["Pull request review thread line must be part of the diff"],
            )
    review = Review(
        id=fake.state.next_id(),
        pull_number=pull.number,
        state=_REVIEW_STATE.get(event or "", "PENDING"),
        body=text,
        commit_id=commit_id,
        user=_actor(call),
    )
    repo.reviews[review.id] = review
    for c in body.get("comments") or []:
        rc = ReviewComment(
            id=fake.state.next_id(),
            pull_number=pull.number,
            review_id=review.id,
            path=c["path"],
            line=c.get("line"),
            side=c.get("side", "RIGHT"),
            body=c["body"],
            user=_actor(call),
            commit_id=commit_id,
        )
        repo.review_comments[rc.id] = rc
    return Answer(body=fake.render.review(repo, review))


@op("pulls/list-reviews")
def list_reviews(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    items = [v for v in repo.reviews.values() if v.pull_number == pull.number]
    return Answer(body=[fake.render.review(repo, v) for v in _page(call, items)])


@op("pulls/get-review")
def get_review(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    review = repo.reviews.get(call.int_param("review_id"))
    if review is None or review.pull_number != pull.number:
        raise HttpError(404, "Not Found")
    return Answer(body=fake.render.review(repo, review))


@op("pulls/list-comments-for-review")
def list_review_comments_of_review(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    review_id = call.int_param("review_id")
    if review_id not in repo.reviews:
        raise HttpError(404, "Not Found")
    items = [
        c
        for c in repo.review_comments.values()
        if c.pull_number == pull.number and c.review_id == review_id
    ]
    return Answer(
        body=[fake.render.review_comment(repo, c, "review-comment") for c in _page(call, items)]
    )


@op("pulls/list-review-comments")
def list_review_comments(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    items = [c for c in repo.review_comments.values() if c.pull_number == pull.number]
    return Answer(body=[fake.render.review_comment(repo, c) for c in _page(call, items)])


@op("pulls/create-reply-for-review-comment")
def reply_review_comment(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    parent = repo.review_comments.get(call.int_param("comment_id"))
    if parent is None or parent.pull_number != pull.number:
        raise HttpError(404, "Not Found")
    top = parent.in_reply_to_id or parent.id
    reply = ReviewComment(
        id=fake.state.next_id(),
        pull_number=pull.number,
        review_id=fake.state.next_id(),
        path=parent.path,
        line=parent.line,
        side=parent.side,
        body=call.json["body"],
        user=_actor(call),
        commit_id=parent.commit_id,
        in_reply_to_id=top,
    )
    repo.review_comments[reply.id] = reply
    return Answer(status=201, body=fake.render.review_comment(repo, reply))


# --- checks and actions ---------------------------------------------------------------------


def _apply_check(run: CheckRun, body: dict[str, Any]) -> None:
    for key in (
        "name",
        "status",
        "conclusion",
        "started_at",
        "completed_at",
        "external_id",
        "details_url",
    ):
        if key in body:
            setattr(run, key, body[key])
    if "output" in body:
        run.output = dict(body["output"])
    if body.get("conclusion") is not None:
        run.status = "completed"
        run.completed_at = run.completed_at or now_iso()
    if run.status == "in_progress" and run.started_at is None:
        run.started_at = now_iso()


@op("checks/create")
def create_check(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    run = CheckRun(
        id=fake.state.next_id(),
        name=call.json["name"],
        head_sha=call.json["head_sha"],
        app_id=fake.app.id,
    )
    _apply_check(run, call.json)
    repo.check_runs[run.id] = run
    return Answer(status=201, body=fake.render.check_run(repo, run))


@op("checks/update")
def update_check(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    run = repo.check_runs.get(call.int_param("check_run_id"))
    if run is None:
        raise HttpError(404, "Not Found")
    _apply_check(run, call.json or {})
    return Answer(body=fake.render.check_run(repo, run))


@op("checks/list-for-ref")
def list_checks(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    ref = call.params["ref"]
    runs = [r for r in repo.check_runs.values() if r.head_sha == ref]
    if name := call.query.get("check_name"):
        runs = [r for r in runs if r.name == name]
    if status := call.query.get("status"):
        runs = [r for r in runs if r.status == status]
    page = _page(call, runs)
    return Answer(
        body={
            "total_count": len(runs),
            "check_runs": [fake.render.check_run(repo, r) for r in page],
        }
    )


@op("actions/download-job-logs-for-workflow-run")
def job_logs(fake: FakeGitHub, call: Call) -> Answer:
    repo = call.need_repo()
    run = repo.check_runs.get(call.int_param("job_id"))
    if run is None or run.log is None:
        raise HttpError(404, "Not Found")
    location = fake.sign_log_url(repo, run)
    return Answer(status=302, headers={"Location": location}, text="", media_type="text/plain")
