"""What the stand-in is seeded with: repositories (git-backed or not), installations, PATs,
issues, comments, pull requests, reviews, check runs (mixed into
:class:`~gaffer.demo.github.server.GitHubStandIn`)."""

from __future__ import annotations

import secrets
from pathlib import Path

from gaffer.demo.github import git_http
from gaffer.demo.github.state import (
    CheckRun,
    Comment,
    Installation,
    Issue,
    PullRequest,
    Repository,
    Review,
    ReviewComment,
    State,
    Token,
)


class Seeding:
    """What a demo or a test puts into the stand-in. Each method takes the state lock."""

    root: Path
    state: State

    # --- seeding --------------------------------------------------------------------------

    def add_repo(
        self, full_name: str, private: bool = False, git: bool = False, default_branch: str = "main"
    ) -> Repository:
        """Add a repository; ``git``: back it by an empty bare repository served over HTTP."""
        owner, name = full_name.split("/")
        repo = Repository(
            owner=owner,
            name=name,
            id=self.state.next_id(),
            private=private,
            default_branch=default_branch,
        )
        if git:
            path = self.root / "git" / owner / f"{name}.git"
            path.parent.mkdir(parents=True, exist_ok=True)
            repo.git_dir = git_http.init_bare(path, default_branch)
        with self.state.lock:
            self.state.repos[full_name.lower()] = repo
        return repo

    def add_installation(
        self,
        account: str,
        repositories: list[str],
        permissions: dict[str, str] | None = None,
        installation_id: int | None = None,
    ) -> Installation:
        """Install the app on ``account`` for ``repositories`` (names without owner)."""
        inst = Installation(
            id=installation_id or self.state.next_id(),
            account=self.state.user(account),
            repositories=list(repositories),
            permissions=permissions
            or {
                "contents": "write",
                "issues": "write",
                "pull_requests": "write",
                "checks": "write",
                "actions": "read",
                "metadata": "read",
            },
        )
        with self.state.lock:
            self.state.installations[inst.id] = inst
        return inst

    def add_pat(self, login: str) -> str:
        """A personal access token of user ``login`` (not narrowed)."""
        value = "github_pat_" + secrets.token_hex(20)
        with self.state.lock:
            self.state.tokens[value] = Token(value=value, kind="pat", user=self.state.user(login))
        return value

    def add_issue(
        self, repo: Repository, title: str, body: str = "", author: str = "octocat"
    ) -> Issue:
        with self.state.lock:
            issue = Issue(
                number=self.state.next_number(repo),
                title=title,
                body=body,
                user=self.state.user(author),
            )
            repo.issues[issue.number] = issue
        return issue

    def add_comment(
        self, repo: Repository, number: int, body: str, author: str = "octocat"
    ) -> Comment:
        with self.state.lock:
            comment = Comment(
                id=self.state.next_id(),
                issue_number=number,
                body=body,
                user=self.state.user(author),
            )
            repo.comments[comment.id] = comment
        return comment

    def add_pull(
        self,
        repo: Repository,
        head_ref: str,
        head_sha: str,
        diff: str,
        title: str = "A change",
        body: str = "",
        base_ref: str = "main",
        base_sha: str = "0" * 40,
        author: str = "octocat",
        from_fork: bool = False,
    ) -> PullRequest:
        with self.state.lock:
            number = self.state.next_number(repo)
            user = self.state.user(author)
            repo.issues[number] = Issue(
                number=number, title=title, body=body, user=user, is_pull_request=True
            )
            pull = PullRequest(
                number=number,
                head_ref=head_ref,
                base_ref=base_ref,
                head_sha=head_sha,
                base_sha=base_sha,
                user=user,
                diff=diff,
                from_fork=from_fork,
            )
            repo.pulls[number] = pull
        return pull

    def add_review(
        self,
        repo: Repository,
        pull: PullRequest,
        state: str,
        body: str,
        comments: list[tuple[str, int, str]],
        author: str = "octocat",
    ) -> tuple[Review, list[ReviewComment]]:
        """A submitted review with inline ``comments`` given as (path, line, body)."""
        with self.state.lock:
            user = self.state.user(author)
            review = Review(
                id=self.state.next_id(),
                pull_number=pull.number,
                state=state,
                body=body,
                commit_id=pull.head_sha,
                user=user,
            )
            repo.reviews[review.id] = review
            made = []
            for path, line, text in comments:
                rc = ReviewComment(
                    id=self.state.next_id(),
                    pull_number=pull.number,
                    review_id=review.id,
                    path=path,
                    line=line,
                    side="RIGHT",
                    body=text,
                    user=user,
                    commit_id=pull.head_sha,
                )
                repo.review_comments[rc.id] = rc
                made.append(rc)
        return review, made

    def add_check_run(
        self,
        repo: Repository,
        name: str,
        head_sha: str,
        conclusion: str | None = "failure",
        log: str | None = None,
    ) -> CheckRun:
        """A check run (an Actions job when ``log`` is given: its id is the job id)."""
        with self.state.lock:
            run = CheckRun(
                id=self.state.next_id(),
                name=name,
                head_sha=head_sha,
                status="completed" if conclusion else "in_progress",
                conclusion=conclusion,
                log=log,
                started_at="2026-01-01T00:00:00Z",
                completed_at="2026-01-01T00:01:00Z" if conclusion else None,
            )
            repo.check_runs[run.id] = run
        return run

    def revoke(self, token: str) -> None:
        """Make ``token`` unknown (GitHub then answers 401 "Bad credentials")."""
        with self.state.lock:
            self.state.tokens.pop(token, None)
