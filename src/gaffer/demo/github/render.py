"""The fake's objects as GitHub serves them: a valid instance of the component schema (built
from the description) overlaid with the fake's state, and with GitHub's URLs."""

from __future__ import annotations

from typing import Any

from gaffer.demo.github.description import Description
from gaffer.demo.github.state import (
    CheckRun,
    Comment,
    Issue,
    PullRequest,
    Reaction,
    Repository,
    Review,
    ReviewComment,
    User,
)


class Renderer:
    """Builds response bodies; ``api`` and ``web`` are the fake's base URLs (no trailing /)."""

    def __init__(self, contract: Description, api: str, web: str) -> None:
        self.c = contract
        self.api = api
        self.web = web

    def user(self, u: User, schema: str = "simple-user") -> dict[str, Any]:
        return self.c.instance(
            schema,
            login=u.login,
            id=u.id,
            node_id=f"U_{u.id}",
            type=u.type,
            url=f"{self.api}/users/{u.login}",
            html_url=f"{self.web}/{u.login}",
        )

    def repo(self, r: Repository, schema: str = "repository") -> dict[str, Any]:
        owner = User(login=r.owner, id=abs(hash(r.owner)) % 10**6 + 1)
        return self.c.instance(
            schema,
            id=r.id,
            node_id=f"R_{r.id}",
            name=r.name,
            full_name=r.full_name,
            private=r.private,
            visibility="private" if r.private else "public",
            owner=self.user(owner),
            default_branch=r.default_branch,
            url=f"{self.api}/repos/{r.full_name}",
            html_url=f"{self.web}/{r.full_name}",
            clone_url=f"{self.web}/{r.full_name}.git",
        )

    def issue(self, r: Repository, i: Issue) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if i.is_pull_request:
            extra["pull_request"] = {
                "url": f"{self.api}/repos/{r.full_name}/pulls/{i.number}",
                "html_url": f"{self.web}/{r.full_name}/pull/{i.number}",
                "diff_url": f"{self.web}/{r.full_name}/pull/{i.number}.diff",
                "patch_url": f"{self.web}/{r.full_name}/pull/{i.number}.patch",
            }
        return self.c.instance(
            "issue",
            id=i.number + r.id * 1000,
            node_id=f"I_{r.id}_{i.number}",
            number=i.number,
            title=i.title,
            body=i.body,
            state=i.state,
            user=self.user(i.user),
            comments=sum(1 for c in r.comments.values() if c.issue_number == i.number),
            url=f"{self.api}/repos/{r.full_name}/issues/{i.number}",
            html_url=f"{self.web}/{r.full_name}/issues/{i.number}",
            **extra,
        )

    def comment(self, r: Repository, c: Comment) -> dict[str, Any]:
        return self.c.instance(
            "issue-comment",
            id=c.id,
            node_id=f"IC_{c.id}",
            body=c.body,
            user=self.user(c.user),
            created_at=c.created_at,
            updated_at=c.updated_at,
            url=f"{self.api}/repos/{r.full_name}/issues/comments/{c.id}",
            html_url=f"{self.web}/{r.full_name}/issues/{c.issue_number}#issuecomment-{c.id}",
            issue_url=f"{self.api}/repos/{r.full_name}/issues/{c.issue_number}",
        )

    def reaction(self, x: Reaction) -> dict[str, Any]:
        return self.c.instance(
            "reaction", id=x.id, node_id=f"REA_{x.id}", content=x.content, user=self.user(x.user)
        )

    def _branch(self, r: Repository, ref: str, sha: str, fork: bool) -> dict[str, Any]:
        repo = self.repo(r)
        if fork:
            repo = {**repo, "fork": True, "full_name": f"forker/{r.name}", "name": r.name}
        return {
            "label": f"{r.owner}:{ref}",
            "ref": ref,
            "sha": sha,
            "repo": repo,
            "user": repo["owner"],
        }

    def pull(self, r: Repository, p: PullRequest, schema: str = "pull-request") -> dict[str, Any]:
        issue = r.issues[p.number]
        base = f"{self.web}/{r.full_name}/pull/{p.number}"
        out = self.c.instance(
            schema,
            id=p.number + r.id * 1000,
            node_id=f"PR_{r.id}_{p.number}",
            number=p.number,
            title=issue.title,
            body=issue.body,
            state="closed" if p.merged else p.state,
            draft=p.draft,
            user=self.user(p.user),
            head=self._branch(r, p.head_ref, p.head_sha, p.from_fork),
            base=self._branch(r, p.base_ref, p.base_sha, False),
            url=f"{self.api}/repos/{r.full_name}/pulls/{p.number}",
            html_url=base,
            diff_url=base + ".diff",
            patch_url=base + ".patch",
            issue_url=f"{self.api}/repos/{r.full_name}/issues/{p.number}",
        )
        if schema == "pull-request":
            out["merged"] = p.merged
            out["changed_files"] = len(p.files)
        return out

    def review(self, r: Repository, v: Review) -> dict[str, Any]:
        return self.c.instance(
            "pull-request-review",
            id=v.id,
            node_id=f"PRR_{v.id}",
            user=self.user(v.user),
            body=v.body,
            state=v.state,
            commit_id=v.commit_id,
            submitted_at=v.submitted_at,
            html_url=f"{self.web}/{r.full_name}/pull/{v.pull_number}#pullrequestreview-{v.id}",
            pull_request_url=f"{self.api}/repos/{r.full_name}/pulls/{v.pull_number}",
        )

    def review_comment(
        self, r: Repository, x: ReviewComment, schema: str = "pull-request-review-comment"
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if x.in_reply_to_id is not None:
            extra["in_reply_to_id"] = x.in_reply_to_id
        if x.line is not None:
            extra["line"] = x.line
            extra["side"] = x.side
        return self.c.instance(
            schema,
            id=x.id,
            node_id=f"PRRC_{x.id}",
            pull_request_review_id=x.review_id,
            path=x.path,
            body=x.body,
            user=self.user(x.user),
            commit_id=x.commit_id,
            original_commit_id=x.commit_id,
            created_at=x.created_at,
            updated_at=x.created_at,
            url=f"{self.api}/repos/{r.full_name}/pulls/comments/{x.id}",
            html_url=f"{self.web}/{r.full_name}/pull/{x.pull_number}#discussion_r{x.id}",
            pull_request_url=f"{self.api}/repos/{r.full_name}/pulls/{x.pull_number}",
            **extra,
        )

    def check_run(self, r: Repository, k: CheckRun) -> dict[str, Any]:
        output = {
            "title": None,
            "summary": None,
            "text": None,
            "annotations_count": 0,
            "annotations_url": f"{self.api}/repos/{r.full_name}/check-runs/{k.id}/annotations",
        }
        output.update({key: k.output.get(key) for key in ("title", "summary", "text")})
        return self.c.instance(
            "check-run",
            id=k.id,
            node_id=f"CR_{k.id}",
            name=k.name,
            head_sha=k.head_sha,
            status=k.status,
            conclusion=k.conclusion,
            started_at=k.started_at,
            completed_at=k.completed_at,
            external_id=k.external_id,
            details_url=k.details_url,
            output=output,
            url=f"{self.api}/repos/{r.full_name}/check-runs/{k.id}",
            html_url=f"{self.web}/{r.full_name}/runs/{k.id}",
        )
