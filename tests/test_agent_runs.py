"""Agent definitions at work, end to end on the local backend (real deliveries, real worker
processes, real git): branch modes, finish rules and continuation, prompts rendered strictly,
the stall timeout, and the engine's API key handed over from the project's credentials."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path

import httpx

from gaffer.store.agents import set_agent
from gaffer.store.credentials import set_credential
from gaffer.store.models import Run
from gaffer.store.projects import get_project
from tests.conftest import GafferFactory
from tests.support.harness import Gaffer, ProjectInfo, fixture_body

PR_HEAD = "changes"  # the head branch of the fixture PRs


def deliver(gaffer: Gaffer, project: ProjectInfo, fixture: str, event: str, **edits: object) -> str:
    """Deliver a fixture (top-level keys replaced by ``edits``); returns the one run queued."""
    payload = json.loads(fixture_body(fixture))
    payload.update(edits)
    response = gaffer.deliver(
        json.dumps(payload).encode(), event, project.secret, delivery_id=str(uuid.uuid4())
    )
    assert response.status_code == 202, response.text
    [run_id] = response.json()["runs"]
    return run_id


def git(bare: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=bare, capture_output=True, text=True, check=True
    ).stdout.strip()


def failed_check_suite() -> dict[str, object]:
    suite = json.loads(fixture_body("check_suite.completed"))["check_suite"]
    suite["conclusion"] = "failure"
    return {"check_suite": suite}


def test_a_pr_head_agent_pushes_onto_the_pull_requests_own_branch(
    start_gaffer: GafferFactory,
) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(
        command='test "$(git rev-parse --abbrev-ref HEAD)" = changes && echo fixed > FIX.txt',
        agents=["respond-to-ci"],
        pr_branch=PR_HEAD,
    )
    assert project.bare is not None
    before = git(project.bare, "rev-parse", f"refs/heads/{PR_HEAD}")
    run_id = deliver(
        gaffer, project, "check_suite.completed", "check_suite", **failed_check_suite()
    )
    run = gaffer.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["branch"] == PR_HEAD
    after = git(project.bare, "rev-parse", f"refs/heads/{PR_HEAD}")
    assert after == run["commit"]
    # Pushed on top of the PR's head, not over it; and no gaffer/... branch was made.
    assert git(project.bare, "rev-parse", f"{after}^") == before
    assert git(project.bare, "show", f"{after}:FIX.txt") == "fixed"
    assert "gaffer/" not in git(project.bare, "for-each-ref", "--format=%(refname)")


def test_a_read_only_agent_pushes_nothing_even_when_the_engine_changed_files(
    start_gaffer: GafferFactory,
) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(
        command="grep -q 'proposed in a pull request' README.md && echo scribble > NOTES.md",
        agents=["review"],
        pr_branch=PR_HEAD,
    )
    assert project.bare is not None
    refs_before = git(project.bare, "for-each-ref", "--format=%(refname) %(objectname)")
    run_id = deliver(gaffer, project, "pull_request.opened", "pull_request")
    run = gaffer.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["branch"] is None and run["commit"] is None
    assert run["outputs"] == {
        "review": {"event": "COMMENT", "body": "looked at it", "comments": []}
    }
    assert git(project.bare, "for-each-ref", "--format=%(refname) %(objectname)") == refs_before
    messages = [m for _, m in gaffer.logs(run_id)]
    assert any(
        "read-only agent: the engine changed 1 file(s) (NOTES.md); nothing is committed" in m
        for m in messages
    ), messages


REVIEW_ON_SECOND_TURN = """
if [ "$GAFFER_TURN" = 2 ]; then
  python - <<'PY'
import json, os
prompt = open(os.environ["GAFFER_PROMPT_FILE"]).read()
review = {"event": "REQUEST_CHANGES", "body": prompt, "comments": [
    {"path": "README.md", "line": 1, "side": "RIGHT", "body": "typo"}]}
open(os.environ["GAFFER_REVIEW_FILE"], "w").write(json.dumps(review))
PY
fi
"""


def test_a_continuation_turn_makes_a_review_agent_write_its_review(
    start_gaffer: GafferFactory,
) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(
        command=REVIEW_ON_SECOND_TURN, agents=["review"], raw_command=True
    )
    run_id = deliver(gaffer, project, "pull_request.opened", "pull_request")
    run = gaffer.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["engine_usage"] == {"invocations": 2}
    review = run["outputs"]["review"]
    assert review["event"] == "REQUEST_CHANGES"
    assert review["comments"] == [{"path": "README.md", "line": 1, "side": "RIGHT", "body": "typo"}]
    # The second turn's prompt said exactly what was missing, and where to write it.
    assert "the review file is missing or invalid" in review["body"]
    assert "/scratch/out/review.json" in review["body"]
    messages = [m for _, m in gaffer.logs(run_id)]
    assert any(m.startswith("finish rule not met after turn 1: no file at") for m in messages)


def test_an_agent_that_never_meets_its_finish_rule_fails_saying_what_is_missing(
    start_gaffer: GafferFactory,
) -> None:
    gaffer = start_gaffer()
    # The review file is written every turn, but never valid.
    project = gaffer.create_project(
        command='echo \'{"event": "LGTM", "body": "fine"}\' > "$GAFFER_REVIEW_FILE"',
        agents=["review"],
        raw_command=True,
    )
    run_id = deliver(gaffer, project, "pull_request.opened", "pull_request")
    run = gaffer.wait_for(run_id)
    assert run["status"] == "FAILED"
    assert run["error"].startswith("review agent wrote no review after 3 turns (last problem:")
    assert "event: Input should be 'COMMENT', 'REQUEST_CHANGES' or 'APPROVE'" in run["error"]
    assert run["engine_usage"] == {"invocations": 3}


def test_an_implementation_that_changes_nothing_fails_after_its_turns(
    start_gaffer: GafferFactory,
) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(command="echo thinking", agents=["implementation"])
    body = fixture_body("issues.labeled")
    response = gaffer.deliver(body, "issues", project.secret)
    [run_id] = response.json()["runs"]
    run = gaffer.wait_for(run_id)
    assert run["status"] == "FAILED"
    assert run["error"] == "implementation agent changed no files after 3 turns"
    assert project.bare is not None
    assert git(project.bare, "for-each-ref", "--format=%(refname)") == "refs/heads/main"


def test_a_template_naming_a_variable_the_run_lacks_fails_the_run_with_its_name(
    start_gaffer: GafferFactory,
) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(command="echo ok > OK.txt", agents=["implementation"])
    with gaffer.rt.db.session() as session:
        set_agent(
            session,
            get_project(session, project.name),
            "implementation",
            # comment_body is one of the agent's variables, but an issue label has no comment.
            overrides={"task_prompt": "Do #{{ work_item }} as asked: {{ comment_body }}"},
        )
    response = gaffer.deliver(fixture_body("issues.labeled"), "issues", project.secret)
    [run_id] = response.json()["runs"]
    run = gaffer.wait_for(run_id)
    assert run["status"] == "FAILED"
    assert run["error"] == (
        "the implementation agent's task_prompt: variable 'comment_body' is undefined for this run"
    )


def test_a_stalled_engine_is_stopped_and_the_run_timed_out(start_gaffer: GafferFactory) -> None:
    gaffer = start_gaffer(stall_timeout_s=2.0)
    project = gaffer.create_project(command="echo started; sleep 600", agents=["implementation"])
    response = gaffer.deliver(fixture_body("issues.labeled"), "issues", project.secret)
    [run_id] = response.json()["runs"]
    run = gaffer.wait_for(run_id)
    assert run["status"] == "TIMED_OUT"
    assert run["error"] == "stalled: no engine output for 2 s"


def test_without_the_gateway_the_engine_api_key_goes_to_the_engine_only(
    start_gaffer: GafferFactory,
) -> None:
    """GAFFER_GATEWAY_ENABLED=false: the provider key is read from the project's credentials
    when the run starts and reaches the engine's process, and nothing else."""
    gaffer = start_gaffer(gateway_enabled=False)
    secret = "sk-test-" + uuid.uuid4().hex
    project = gaffer.create_project(
        command='printf %s "$GAFFER_MODEL_API_KEY" > KEY.txt; env | cut -d= -f1 > ENV.txt',
        agents=["implementation"],
    )
    with gaffer.rt.db.session() as session:
        found = get_project(session, project.name)
        set_credential(session, gaffer.rt.box, found.id, "MODEL_KEY", secret)
        set_agent(
            session,
            found,
            "implementation",
            overrides={"credential": "MODEL_KEY", "model": "m-1", "base_url": "http://x:1"},
        )
    response = gaffer.deliver(fixture_body("issues.labeled"), "issues", project.secret)
    [run_id] = response.json()["runs"]
    run = gaffer.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert project.bare is not None
    assert git(project.bare, "show", f"{run['commit']}:KEY.txt") == secret
    names = git(project.bare, "show", f"{run['commit']}:ENV.txt").split()
    assert "GAFFER_MODEL" in names and "GAFFER_ENGINE_API_KEY" not in names
    # Never in the stored job, the log, or the run record.
    with gaffer.rt.db.session() as session:
        stored = session.get(Run, run_id)
        assert stored is not None
        assert secret not in json.dumps(stored.job_data)
        assert stored.job_data["engine"]["credential"] == "MODEL_KEY"
    assert all(secret not in m for _, m in gaffer.logs(run_id))


def test_with_the_gateway_the_engine_gets_a_run_token_and_never_the_provider_key(
    start_gaffer: GafferFactory,
) -> None:
    gaffer = start_gaffer()  # the gateway is on by default, in this process
    secret = "sk-test-" + uuid.uuid4().hex
    project = gaffer.create_project(
        command=(
            'printf %s "$GAFFER_MODEL_API_KEY" > KEY.txt; '
            'printf %s "$GAFFER_MODEL_BASE_URL" > URL.txt; env > ENV.txt'
        ),
        agents=["implementation"],
    )
    with gaffer.rt.db.session() as session:
        found = get_project(session, project.name)
        set_credential(session, gaffer.rt.box, found.id, "MODEL_KEY", secret)
        set_agent(session, found, "implementation", overrides={"credential": "MODEL_KEY"})
    response = gaffer.deliver(fixture_body("issues.labeled"), "issues", project.secret)
    [run_id] = response.json()["runs"]
    run = gaffer.wait_for(run_id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert project.bare is not None
    token = git(project.bare, "show", f"{run['commit']}:KEY.txt")
    assert token and token != secret
    assert git(project.bare, "show", f"{run['commit']}:URL.txt").startswith("http://127.0.0.1:")
    assert secret not in git(project.bare, "show", f"{run['commit']}:ENV.txt")
    # The token named this run, which has ended: the gateway refuses it now.
    url = git(project.bare, "show", f"{run['commit']}:URL.txt")
    refused = httpx.post(
        f"{url}/v1/messages",
        headers={"x-api-key": token, "anthropic-version": "2023-06-01"},
        json={"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert refused.status_code == 401, refused.text
    assert refused.json()["type"] == "error"


POST_MORTEM = """
if [ "$GAFFER_AGENT_TYPE" = debug ]; then
  python - <<'PY'
import json, os
open(os.environ["GAFFER_REPLY_FILE"], "w").write(json.dumps(
    {"body": open(os.environ["GAFFER_PROMPT_FILE"]).read()}))
PY
else
  echo "something broke" >&2; exit 3
fi
"""


def test_a_failed_run_gets_a_debug_post_mortem_when_the_project_enables_it(
    start_gaffer: GafferFactory,
) -> None:
    gaffer = start_gaffer()
    project = gaffer.create_project(
        command=POST_MORTEM, agents=["implementation"], raw_command=True
    )
    with gaffer.rt.db.session() as session:
        found = get_project(session, project.name)
        set_agent(session, found, "debug", enabled=True)  # off by default
    response = gaffer.deliver(fixture_body("issues.labeled"), "issues", project.secret)
    [failed_id] = response.json()["runs"]
    failed = gaffer.wait_for(failed_id)
    assert failed["status"] == "FAILED"

    def debug_runs() -> list[Run]:
        with gaffer.rt.db.session() as session:
            return list(
                session.query(Run).filter(Run.project_id == project.id, Run.agent_type == "debug")
            )

    deadline = time.monotonic() + 60
    while not debug_runs():
        assert time.monotonic() < deadline, "no debug run was started"
        time.sleep(0.1)
    [debug] = debug_runs()
    run = gaffer.wait_for(debug.id)
    assert run["status"] == "SUCCEEDED", run["error"]
    assert run["trigger"] == "gaffer:run.failed" and run["branch"] is None
    post_mortem = run["outputs"]["reply"]["body"]
    assert f"Run {failed_id} (implementation on #1) ended FAILED: {failed['error']}" in post_mortem
    assert "[engine] something broke" in post_mortem
