"""Back to GitHub end to end: webhooks into a running gaffer, the fake GitHub as github.com,
real git over smart HTTP, the ``command`` engine.

Credentials are set with the CLI (``gaffer github set-app|set-token|show``); the run's start
fetches its context and mints an installation token for the worker's git; the outbox's writes
(ack, PR, review, check runs) are sent by the notifier of the dispatch role.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from gaffer.store.models import OutboxEntry, OutboxStatus, Run, RunStatus
from gaffer.store.outbox import entries_for_run
from tests.conftest import MASTER_KEY, GafferFactory
from tests.support.fake_github import FakeGitHub
from tests.support.fake_github.fixtures import fake_github
from tests.support.fake_github.state import Repository
from tests.support.harness import Gaffer, ProjectInfo, fixture_body
from tests.support.process import GAFFER, gaffer, gaffer_env
from tests.support.tokens import assert_no_token_in_workspace

__all__ = ["fake_github"]

REPO = "acme/widgets"


def _git(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    full = {
        "PATH": os.environ["PATH"],
        "HOME": str(cwd),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "GIT_TERMINAL_PROMPT": "0",
        **(env or {}),
    }
    return subprocess.run(
        ["git", *args], cwd=cwd, env=full, capture_output=True, text=True, check=True
    ).stdout.strip()


def seed(
    repo: Repository, tmp_path: Path, branches: dict[str, str] | None = None
) -> dict[str, str]:
    """Put ``main`` (a README) and ``branches`` (name -> a file's text, on top of main) into
    the fake's bare repository directly; returns each branch's head SHA."""
    work = tmp_path / "seed"
    work.mkdir()
    _git("init", "-q", "-b", "main", cwd=work)
    (work / "README.md").write_text("hello\n")
    _git("add", ".", cwd=work)
    _git("commit", "-qm", "first", cwd=work)
    assert repo.git_dir is not None
    _git("push", "-q", str(repo.git_dir), "main", cwd=work)
    heads = {"main": _git("rev-parse", "HEAD", cwd=work)}
    for name, text in (branches or {}).items():
        _git("checkout", "-q", "-b", name, "main", cwd=work)
        (work / "change.txt").write_text(text)
        _git("add", ".", cwd=work)
        _git("commit", "-qm", f"change on {name}", cwd=work)
        _git("push", "-q", str(repo.git_dir), name, cwd=work)
        heads[name] = _git("rev-parse", "HEAD", cwd=work)
    return heads


def private_repo(
    fake: FakeGitHub, tmp_path: Path, branches: dict[str, str] | None = None
) -> tuple[Repository, dict[str, str]]:
    """The private ``acme/widgets`` on ``fake`` with the App installed on it, ``main`` (and
    ``branches``) pushed; returns it and each branch's head SHA (:func:`seed`)."""
    repo = fake.add_repo(REPO, private=True, git=True)
    fake.add_installation("acme", ["widgets"])
    return repo, seed(repo, tmp_path, branches)


def deliver_labeled(g: Gaffer, project: ProjectInfo, issue: Any) -> str:
    """``issues.labeled`` for the fake's ``issue`` on :data:`REPO`; returns the run id."""
    payload = json.loads(fixture_body("issues.labeled"))["issue"]
    payload.update(number=issue.number, title=issue.title, body=issue.body)
    return deliver(g, project, "issues.labeled", "issues", issue=payload)


def cli_env(g: Gaffer) -> dict[str, str]:
    return gaffer_env(g.settings.home, REDIS_URL=g.settings.redis_url, GAFFER_MASTER_KEY=MASTER_KEY)


def set_app(g: Gaffer, project: ProjectInfo, fake: FakeGitHub, tmp_path: Path) -> None:
    """``gaffer github set-app`` as a user types it (the key from a file)."""
    key = tmp_path / "app.pem"
    key.write_text(fake.app.private_key_pem)
    gaffer(
        "github",
        "set-app",
        "--project",
        project.name,
        "--app-id",
        str(fake.app.id),
        "--private-key-file",
        str(key),
        "--api-url",
        fake.api_url,
        env=cli_env(g),
    )


def repository_payload() -> dict[str, Any]:
    base = json.loads(fixture_body("issues.labeled"))["repository"]
    base.update(full_name=REPO, name="widgets", private=True)
    base["owner"] = {**base["owner"], "login": "acme"}
    return base


def deliver(g: Gaffer, project: ProjectInfo, fixture: str, event: str, **edits: Any) -> str:
    payload = json.loads(fixture_body(fixture))
    payload.update(edits)
    payload["repository"] = repository_payload()
    response = g.deliver(
        json.dumps(payload).encode(), event, project.secret, delivery_id=str(uuid.uuid4())
    )
    assert response.status_code == 202, response.text
    [run_id] = response.json()["runs"]
    return run_id


def wait_sent(g: Gaffer, run_id: str, timeout: float = 30) -> list[OutboxEntry]:
    """Wait until every outbox entry of the run is final; returns them."""
    deadline = time.monotonic() + timeout
    final = {OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.SUPERSEDED}
    while True:
        with g.rt.db.session() as session:
            entries = list(entries_for_run(session, run_id))
            for e in entries:
                session.expunge(e)
        done = entries and all(OutboxStatus(e.status) in final for e in entries)
        if done and any(e.kind == "ack_update" for e in entries):
            return entries
        if time.monotonic() > deadline:
            states = [(e.kind, e.status, e.last_error) for e in entries]
            raise AssertionError(f"outbox of {run_id} not sent: {states}")
        time.sleep(0.1)


def ack_comment(repo: Repository, number: int, run_id: str) -> str:
    found = [c.body for c in repo.comments.values() if c.issue_number == number]
    mine = [b for b in found if run_id in b]
    assert len(mine) == 1, found
    return mine[0]


def test_github_credentials_are_set_and_shown_masked(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    g = start_gaffer(roles=("ingest",))
    project = g.create_project(repository=REPO, with_repository=False)
    env = cli_env(g)
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    refused = gaffer(
        "github", "set-app", "--project", project.name, "--app-id", "7",
        "--private-key-file", str(bad), env=env, check=False,
    )  # fmt: skip
    assert refused.returncode == 1 and "not a PEM private key" in refused.stderr
    assert gaffer("github", "show", "--project", project.name, env=env, check=False).returncode == 1

    set_app(g, project, fake_github, tmp_path)
    shown = json.loads(
        gaffer("github", "show", "--project", project.name, "--json", env=env).stdout
    )
    assert shown["kind"] == "app" and shown["app_id"] == fake_github.app.id
    assert shown["api_url"] == fake_github.api_url
    assert "PRIVATE KEY" not in json.dumps(shown)

    token = fake_github.add_pat("alice")
    proc = subprocess.run(
        [GAFFER, "github", "set-token", "--project", project.name, "--login", "alice"],
        input=token, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert token not in proc.stdout + proc.stderr
    shown = json.loads(
        gaffer("github", "show", "--project", project.name, "--json", env=env).stdout
    )
    assert shown == {**shown, "kind": "token", "login": "alice", "token": "******"}
    assert token not in json.dumps(shown)
    # A PAT that is a person's account: that person is the bot (the loop guard's login).
    with g.rt.db.session() as session:
        from gaffer.store.projects import get_project

        assert get_project(session, project.name).bot_login == "alice"


def test_issue_labeled_opens_a_pull_request_from_a_private_repository(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo, _ = private_repo(fake_github, tmp_path)
    issue = fake_github.add_issue(repo, "Widgets break", "Widgets break on Tuesdays")
    g = start_gaffer(keep_workspaces=True)
    project = g.create_project(
        command=f"env > {tmp_path}/engine-env.txt; echo fixed > FIX.txt",
        agents=["implementation"],
        repository=REPO,
        with_repository=False,
    )
    set_app(g, project, fake_github, tmp_path)
    run_id = deliver_labeled(g, project, issue)
    run = g.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    branch = f"gaffer/implementation/{issue.number}"
    assert run["branch"] == branch
    entries = wait_sent(g, run_id)
    assert [(e.kind, e.status) for e in entries if e.kind != "ack_update"] == [
        ("ack", "sent"),
        ("pull_request", "sent"),
    ], [(e.kind, e.status, e.last_error) for e in entries]
    [pull] = [p for p in repo.pulls.values() if p.head_ref == branch]
    assert pull.base_ref == "main"
    assert f"Closes #{issue.number}" in repo.issues[pull.number].body
    final = ack_comment(repo, issue.number, run_id)
    assert "Done" in final and f"/pull/{pull.number}" in final
    # The pushed branch is on the fake, cloned and pushed with the installation token only.
    assert repo.git_dir is not None
    shown = subprocess.run(
        ["git", "--git-dir", str(repo.git_dir), "show", f"{branch}:FIX.txt"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "fixed"
    # No token in the run record, its log, or the engine's environment.
    tokens = [t for t, v in fake_github.state.tokens.items() if v.kind == "installation"]
    assert tokens
    with g.rt.db.session() as session:
        row = session.get(Run, run_id)
        assert row is not None
        record = json.dumps(row.job_data) + json.dumps(run, default=str)
    logs = "\n".join(m for _, m in g.logs(run_id))
    engine_env = (tmp_path / "engine-env.txt").read_text()
    assert "PATH=" in engine_env
    for token in tokens:
        assert token not in record and token not in logs and token not in engine_env
    assert "GAFFER_GIT_TOKEN" not in engine_env and "extraHeader" not in engine_env
    configs = list((g.settings.workspaces_dir / run_id).rglob("config"))
    assert any(c.parent.name == ".git" for c in configs), configs
    for config in configs:
        text = config.read_text(errors="replace")
        assert "extraheader" not in text.lower() and "x-access-token" not in text
        assert not any(token in text for token in tokens)
    # Nor in any other file of the workspace (reflogs, packed refs, the engine's HOME), and
    # the worker's remote is the plain clone URL.
    git_dirs = assert_no_token_in_workspace(g.settings.workspaces_dir / run_id, tokens)
    worker_git = g.settings.workspaces_dir / run_id / "repo" / ".git"
    assert worker_git in git_dirs and (worker_git / "logs" / "HEAD").exists()


REVIEW = """python - <<'PY'
import json, os, pathlib
ctx = pathlib.Path(os.environ["GAFFER_REVIEW_FILE"]).parent.parent / "context"
diff = (ctx / "github-pr-diff.md").read_text()
review = {"event": "REQUEST_CHANGES", "body": "saw " + str(len(diff)) + " bytes", "comments": [
    {"path": "change.txt", "line": 1, "side": "RIGHT", "body": "say why"},
    {"path": "README.md", "line": 40, "side": "RIGHT", "body": "off the diff"}]}
open(os.environ["GAFFER_REVIEW_FILE"], "w").write(json.dumps(review))
PY
"""

DIFF = """diff --git a/change.txt b/change.txt
new file mode 100644
--- /dev/null
+++ b/change.txt
@@ -0,0 +1 @@
+a change
"""


def test_pull_request_opened_submits_a_review_with_inline_comments(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo, heads = private_repo(fake_github, tmp_path, {"feature": "a change\n"})
    pull = fake_github.add_pull(repo, "feature", heads["feature"], DIFF, base_sha=heads["main"])
    g = start_gaffer()
    project = g.create_project(
        command=REVIEW, agents=["review"], repository=REPO, with_repository=False, raw_command=True
    )
    set_app(g, project, fake_github, tmp_path)
    pr = json.loads(fixture_body("pull_request.opened"))["pull_request"]
    pr.update(number=pull.number)
    pr["head"] = {**pr["head"], "ref": "feature", "sha": heads["feature"]}
    run_id = deliver(
        g, project, "pull_request.opened", "pull_request", number=pull.number, pull_request=pr
    )
    run = g.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    entries = wait_sent(g, run_id)
    kinds = {e.kind: (e.status, e.last_error) for e in entries}
    assert kinds["review"] == ("sent", None), kinds
    assert kinds["check_run_complete"] == ("sent", None), kinds
    [review] = [r for r in repo.reviews.values() if r.pull_number == pull.number]
    assert review.state == "CHANGES_REQUESTED" and review.commit_id == heads["feature"]
    assert "off the diff" in review.body  # folded into the body, not rejected
    inline = [c for c in repo.review_comments.values() if c.review_id == review.id]
    assert [(c.path, c.line, c.body) for c in inline] == [("change.txt", 1, "say why")]
    assert any(r.name == "gaffer / review" for r in repo.check_runs.values())


@pytest.mark.parametrize("merged", [True, False])
def test_a_pull_request_closed_while_the_run_waited_cancels_it_without_a_worker(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path, merged: bool
) -> None:
    repo, heads = private_repo(fake_github, tmp_path, {"feature": "a change\n"})
    pull = fake_github.add_pull(repo, "feature", heads["feature"], DIFF, base_sha=heads["main"])
    pull.state, pull.merged = "closed", merged
    g = start_gaffer()
    project = g.create_project(
        command="exit 9", agents=["review"], repository=REPO, with_repository=False
    )
    set_app(g, project, fake_github, tmp_path)
    pr = json.loads(fixture_body("pull_request.opened"))["pull_request"]
    pr.update(number=pull.number)
    run_id = deliver(
        g, project, "pull_request.opened", "pull_request", number=pull.number, pull_request=pr
    )
    run = g.wait_for(run_id)
    assert run["status"] == "CANCELED"
    assert run["error"] == f"PR #{pull.number} was {'merged' if merged else 'closed'}"
    assert not any("worker started" in m for _, m in g.logs(run_id))


def test_a_push_to_the_pull_request_supersedes_its_running_review(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo = fake_github.add_repo(REPO, private=True, git=True)
    installation = fake_github.add_installation("acme", ["widgets"])
    heads = seed(repo, tmp_path, {"feature": "a change\n"})
    pull = fake_github.add_pull(repo, "feature", heads["feature"], DIFF, base_sha=heads["main"])
    g = start_gaffer()
    project = g.create_project(
        command="sleep 60", agents=["review"], repository=REPO, with_repository=False
    )
    set_app(g, project, fake_github, tmp_path)
    pr = json.loads(fixture_body("pull_request.opened"))["pull_request"]
    pr.update(number=pull.number)
    pr["head"] = {**pr["head"], "ref": "feature", "sha": heads["feature"]}
    run_id = deliver(
        g, project, "pull_request.opened", "pull_request", number=pull.number, pull_request=pr
    )
    g.wait_for(run_id, [RunStatus.RUNNING])
    new_sha = "f" * 40
    pr["head"] = {**pr["head"], "sha": new_sha}
    payload = json.loads(fixture_body("pull_request.synchronize"))
    payload.update(number=pull.number, pull_request=pr, repository=repository_payload())
    payload["installation"] = {"id": installation.id, "node_id": "MDIz"}  # the real one
    response = g.deliver(
        json.dumps(payload).encode(), "pull_request", project.secret, delivery_id=str(uuid.uuid4())
    )
    assert response.status_code == 202, response.text
    run = g.wait_for(run_id)
    assert run["status"] == "CANCELED"
    assert run["error"] == f"superseded by {new_sha}"
    entries = wait_sent(g, run_id)
    assert ("check_run_complete", "sent") in [(e.kind, e.status) for e in entries]
    assert "Canceled" in ack_comment(repo, pull.number, run_id)


def test_a_comment_carrying_gaffers_marker_triggers_nothing(
    start_gaffer: GafferFactory, fake_github: FakeGitHub
) -> None:
    g = start_gaffer()
    project = g.create_project(agents=["implementation"], repository=REPO, with_repository=False)
    payload = json.loads(fixture_body("issue_comment.created"))
    payload["comment"] = {
        **payload["comment"],
        "body": "@gaffer-bot done <!-- gaffer:run=abc123 -->",
        "user": {**payload["comment"]["user"], "login": "alice"},
    }
    payload["sender"] = {**payload["sender"], "login": "alice"}
    payload["repository"] = repository_payload()
    response = g.deliver(
        json.dumps(payload).encode(), "issue_comment", project.secret, delivery_id=str(uuid.uuid4())
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["runs"] == [] and "loop guard" in body["reason"], body


CI_FIX = """ctx="$(dirname "$(dirname "$GAFFER_REVIEW_FILE")")/context"
grep -q "error: widget overflow" "$ctx"/github-ci-*.md || exit 4
test "$(git rev-parse --abbrev-ref HEAD)" = feature || exit 5
echo fixed > FIX.txt
"""


def test_a_failed_check_suite_gives_respond_to_ci_the_failed_log_and_it_pushes_onto_the_pr(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo, heads = private_repo(fake_github, tmp_path, {"feature": "a change\n"})
    pull = fake_github.add_pull(repo, "feature", heads["feature"], DIFF, base_sha=heads["main"])
    fake_github.add_check_run(
        repo, "build", heads["feature"], "failure", log="compiling\nerror: widget overflow\n"
    )
    g = start_gaffer()
    project = g.create_project(
        command=CI_FIX, agents=["respond-to-ci"], repository=REPO, with_repository=False
    )
    set_app(g, project, fake_github, tmp_path)
    suite = json.loads(fixture_body("check_suite.completed"))["check_suite"]
    ref = {"number": pull.number, "url": f"{fake_github.api_url}/repos/{REPO}/pulls/1"}
    suite.update(
        conclusion="failure",
        head_sha=heads["feature"],
        head_branch="feature",
        pull_requests=[
            {
                **suite["pull_requests"][0],
                **ref,
                "head": {
                    **suite["pull_requests"][0]["head"],
                    "ref": "feature",
                    "sha": heads["feature"],
                },
                "base": {**suite["pull_requests"][0]["base"], "ref": "main", "sha": heads["main"]},
            }
        ],
    )
    run_id = deliver(g, project, "check_suite.completed", "check_suite", check_suite=suite)
    run = g.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["branch"] == "feature"
    assert repo.git_dir is not None
    shown = subprocess.run(
        ["git", "--git-dir", str(repo.git_dir), "show", "feature:FIX.txt"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "fixed"
    entries = wait_sent(g, run_id)
    assert {e.kind: e.status for e in entries}["check_run_complete"] == "sent"
    [mine] = [r for r in repo.check_runs.values() if r.name == "gaffer / respond-to-ci"]
    assert mine.conclusion == "success"


def test_github_down_for_the_whole_run_delays_every_write_and_duplicates_none(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo, _ = private_repo(fake_github, tmp_path)
    issue = fake_github.add_issue(repo, "Widgets break", "Widgets break on Tuesdays")
    g = start_gaffer()
    project = g.create_project(
        command="echo fixed > FIX.txt",
        agents=["implementation"],
        repository=REPO,
        with_repository=False,
    )
    set_app(g, project, fake_github, tmp_path)
    # Every write GitHub is asked for fails (the reads and token a run's start needs pass).
    fake_github.fail_next(10_000, status=503, match=r"^(POST|PATCH) /repos/")
    run_id = deliver_labeled(g, project, issue)
    run = g.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    deadline = time.monotonic() + 20
    while True:  # the ack was tried and is waiting for GitHub
        with g.rt.db.session() as session:
            tried = [e.attempts for e in entries_for_run(session, run_id) if e.kind == "ack"]
        if tried and tried[0] >= 1:
            break
        assert time.monotonic() < deadline, "the ack was never tried"
        time.sleep(0.1)
    assert not repo.pulls and not [c for c in repo.comments.values() if run_id in c.body]
    fake_github.faults.clear()
    entries = wait_sent(g, run_id, timeout=90)
    assert {e.kind: e.status for e in entries if e.kind != "ack_update"} == {
        "ack": "sent",
        "pull_request": "sent",
    }, [(e.kind, e.status, e.last_error) for e in entries]
    assert len(repo.pulls) == 1
    ack_comment(repo, issue.number, run_id)  # exactly one, updated in place
    assert "Done" in ack_comment(repo, issue.number, run_id)


ANSWER_REVIEW = """python - <<'PY'
import json, os, pathlib
ctx = pathlib.Path(os.environ["GAFFER_REVIEW_FILE"]).parent.parent / "context"
review = json.loads((ctx / "github.json").read_text())["review"]
replies = [{"comment_id": c["id"], "body": "done: " + c["body"]} for c in review["comments"]]
reply = {"body": "addressed the review", "replies": replies}
open(os.environ["GAFFER_REPLY_FILE"], "w").write(json.dumps(reply))
PY
echo renamed > change.txt
"""


def test_changes_requested_make_respond_to_review_push_onto_the_pr_and_reply(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo, heads = private_repo(fake_github, tmp_path, {"feature": "a change\n"})
    pull = fake_github.add_pull(repo, "feature", heads["feature"], DIFF, base_sha=heads["main"])
    review, [comment] = fake_github.add_review(
        repo, pull, "CHANGES_REQUESTED", "please fix", [("change.txt", 1, "rename it")]
    )
    g = start_gaffer(keep_workspaces=True)
    project = g.create_project(
        command=ANSWER_REVIEW,
        agents=["respond-to-review"],
        repository=REPO,
        with_repository=False,
        raw_command=True,
    )
    set_app(g, project, fake_github, tmp_path)
    payload = json.loads(fixture_body("pull_request_review.submitted"))
    pr = payload["pull_request"]
    pr.update(number=pull.number)
    pr["head"] = {
        **pr["head"], "ref": "feature", "sha": heads["feature"], "repo": repository_payload()
    }  # fmt: skip
    pr["base"] = {**pr["base"], "ref": "main", "repo": repository_payload()}
    event_review = {**payload["review"], "id": review.id, "state": "changes_requested"}
    run_id = deliver(
        g, project, "pull_request_review.submitted", "pull_request_review",
        pull_request=pr, review=event_review,
    )  # fmt: skip
    run = g.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["branch"] == "feature"
    assert repo.git_dir is not None
    shown = subprocess.run(
        ["git", "--git-dir", str(repo.git_dir), "show", "feature:change.txt"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert shown.stdout.strip() == "renamed"
    # The worker fetched the base branch and pushed onto the PR's: no token in FETCH_HEAD,
    # the reflogs, the configs or any other file of the workspace.
    tokens = [t for t, v in fake_github.state.tokens.items() if v.kind == "installation"]
    assert_no_token_in_workspace(g.settings.workspaces_dir / run_id, tokens)
    worker_git = g.settings.workspaces_dir / run_id / "repo" / ".git"
    assert "branch 'main'" in (worker_git / "FETCH_HEAD").read_text()
    entries = wait_sent(g, run_id)
    kinds = {e.kind: (e.status, e.last_error) for e in entries}
    assert kinds["review_replies"] == ("sent", None), kinds
    assert kinds["answer"] == ("sent", None), kinds
    replies = [c for c in repo.review_comments.values() if c.in_reply_to_id == comment.id]
    assert [c.body.split("\n")[0] for c in replies] == ["done: rename it"]
    assert any("addressed the review" in c.body for c in repo.comments.values())


def test_respond_to_ci_stops_at_its_attempt_cap_per_pr_and_branch(
    start_gaffer: GafferFactory,
) -> None:
    g = start_gaffer(ci_max_attempts=1)
    project = g.create_project(
        command="echo fixed > FIX.txt", agents=["respond-to-ci"], pr_branch="changes"
    )
    suite = json.loads(fixture_body("check_suite.completed"))["check_suite"]
    suite["conclusion"] = "failure"
    body = json.loads(fixture_body("check_suite.completed")) | {"check_suite": suite}

    def send() -> dict[str, Any]:
        response = g.deliver(
            json.dumps(body).encode(), "check_suite", project.secret, delivery_id=str(uuid.uuid4())
        )
        assert response.status_code == 202, response.text
        return response.json()  # type: ignore[no-any-return]

    [run_id] = send()["runs"]
    assert g.wait_for(run_id)["status"] == "SUCCEEDED"
    second = send()
    assert second["runs"] == []
    assert "respond-to-ci already ran 1 time(s) on PR #2 (branch changes)" in second["reason"]


def test_the_ack_comment_says_what_the_engine_did_last_while_it_runs(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo, _ = private_repo(fake_github, tmp_path)
    issue = fake_github.add_issue(repo, "Widgets break", "Widgets break on Tuesdays")
    release = tmp_path / "release"
    g = start_gaffer(ack_activity_interval_s=0.3)
    # The engine's words may hold a mention and backticks: they are shown as code, inert. The
    # command engine stands in for a CLI engine here, printing lines as engine_log writes them.
    project = g.create_project(
        command=(
            "echo 'assistant: reading @octocat `main.py`'; echo 'result Read: top-secret-text';"
            f" until [ -e {release} ]; do sleep 0.1; done; echo fixed > FIX.txt"
        ),
        agents=["implementation"],
        repository=REPO,
        with_repository=False,
    )
    set_app(g, project, fake_github, tmp_path)
    run_id = deliver_labeled(g, project, issue)
    shown = "Latest: `reading @octocat 'main.py'`"

    def edits() -> list[str]:
        return [
            str(body.get("body", ""))
            for method, path, status, body in list(fake_github.requests)
            if method == "PATCH" and "/issues/comments/" in path and status == 200
        ]

    deadline = time.monotonic() + 60
    while not any(shown in text and run_id in text for text in edits()):
        assert time.monotonic() < deadline, edits()
        time.sleep(0.1)
    assert g.run(run_id)["status"] == "RUNNING"  # said while the run was still going
    # A tool's result (what it read) is never shown: only assistant messages and tool names.
    assert not any("top-secret-text" in text for text in edits())
    release.touch()
    assert g.wait_for(run_id)["status"] == "SUCCEEDED"
    wait_sent(g, run_id)
    final = ack_comment(repo, issue.number, run_id)
    assert "Done" in final and "Latest:" not in final
