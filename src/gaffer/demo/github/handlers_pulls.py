"""The fake's pull request operations (registered into ``handlers.HANDLERS``)."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from gaffer.demo.github import diffs
from gaffer.demo.github.calls import Answer, Call, HttpError
from gaffer.demo.github.handlers import _actor, _page, _pull, op
from gaffer.demo.github.state import Issue, PullRequest, Repository, Review, ReviewComment

if TYPE_CHECKING:
    from gaffer.demo.github.server import GitHubStandIn


# --- pull requests --------------------------------------------------------------------------


@op("pulls/get")
def get_pull(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    if "application/vnd.github.diff" in call.headers.get("accept", ""):
        return Answer(text=pull.diff, media_type="application/vnd.github.diff")
    return Answer(body=fake.render.pull(repo, pull))


@op("pulls/list")
def list_pulls(fake: GitHubStandIn, call: Call) -> Answer:
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
def create_pull(fake: GitHubStandIn, call: Call) -> Answer:
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
def list_files(fake: GitHubStandIn, call: Call) -> Answer:
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
def create_review(fake: GitHubStandIn, call: Call) -> Answer:
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
def list_reviews(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    items = [v for v in repo.reviews.values() if v.pull_number == pull.number]
    return Answer(body=[fake.render.review(repo, v) for v in _page(call, items)])


@op("pulls/get-review")
def get_review(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    review = repo.reviews.get(call.int_param("review_id"))
    if review is None or review.pull_number != pull.number:
        raise HttpError(404, "Not Found")
    return Answer(body=fake.render.review(repo, review))


@op("pulls/list-comments-for-review")
def list_review_comments_of_review(fake: GitHubStandIn, call: Call) -> Answer:
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
def list_review_comments(fake: GitHubStandIn, call: Call) -> Answer:
    repo = call.need_repo()
    pull = _pull(repo, call.int_param("pull_number"))
    items = [c for c in repo.review_comments.values() if c.pull_number == pull.number]
    return Answer(body=[fake.render.review_comment(repo, c) for c in _page(call, items)])


@op("pulls/create-reply-for-review-comment")
def reply_review_comment(fake: GitHubStandIn, call: Call) -> Answer:
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
