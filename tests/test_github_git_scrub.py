"""A failed push's error never carries the token (issue 10): a real run against the fake
GitHub whose git endpoint refuses the push with a body quoting the credentials it got (git
relays it as ``remote:`` lines); the run fails with git's reason, scrubbed, and no token is in
the run record, its log or any file of its workspace."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from gaffer.store.models import Run
from tests.conftest import GafferFactory
from tests.support.fake_github import FakeGitHub
from tests.support.fake_github.faults import Fault
from tests.support.fake_github.fixtures import fake_github
from tests.support.tokens import assert_no_token_in_workspace, token_forms
from tests.test_github_runs import REPO, deliver_labeled, private_repo, set_app

__all__ = ["fake_github"]


def test_a_refused_push_fails_the_run_with_gits_reason_scrubbed_of_the_token(
    start_gaffer: GafferFactory, fake_github: FakeGitHub, tmp_path: Path
) -> None:
    repo, _ = private_repo(fake_github, tmp_path)
    issue = fake_github.add_issue(repo, "Widgets break", "Widgets break on Tuesdays")
    fake_github.faults.add(
        Fault("echo_credentials", re.compile(r"/acme/widgets\.git/.*service=git-receive-pack"))
    )
    g = start_gaffer(keep_workspaces=True)
    project = g.create_project(
        command="echo fixed > FIX.txt",
        agents=["implementation"],
        repository=REPO,
        with_repository=False,
    )
    set_app(g, project, fake_github, tmp_path)
    run_id = deliver_labeled(g, project, issue)
    run = g.wait_for(run_id)
    assert run["status"] == "FAILED", run
    error = run["error"] or ""
    # git's own reason, with the remote's message, the credentials in it replaced.
    assert "git push" in error and "403" in error, error
    assert "remote: refused: you sent Authorization: Basic ***" in error, error
    assert "(user:token x-access-token:***)" in error, error
    tokens = [t for t, v in fake_github.state.tokens.items() if v.kind == "installation"]
    with g.rt.db.session() as session:
        row = session.get(Run, run_id)
        assert row is not None
        record = (json.dumps(row.job_data) + json.dumps(run, default=str)).encode()
    logs = "\n".join(m for _, m in g.logs(run_id)).encode()
    for form in token_forms(tokens):
        assert form not in record and form not in logs
    assert_no_token_in_workspace(g.settings.workspaces_dir / run_id, tokens)
    assert repo.git_dir is not None
    heads = subprocess.run(
        ["git", "--git-dir", str(repo.git_dir), "for-each-ref", "--format=%(refname)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "gaffer/implementation" not in heads  # nothing was pushed
