"""The GitHub trigger table, on real payloads parsed by the real parser."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gaffer.agents import AgentType
from gaffer.providers.github import parse
from gaffer.store.projects import AgentSnapshot, ProjectSnapshot
from gaffer.triggers.github import default_events, evaluate
from tests.support.harness import fixture_body

ALL_AGENTS = [a.value for a in AgentType]


def project(
    *,
    agents: list[str] = ALL_AGENTS,
    disabled: set[tuple[str, str]] | None = None,
    bot: str = "gaffer-bot",
    label: str = "gaffer",
) -> ProjectSnapshot:
    triggers = {(a, e) for a in agents for e in default_events(a)} - (disabled or set())
    return ProjectSnapshot(
        id="p1",
        name="hello",
        organization_id="o1",
        repository="Codertocat/Hello-World",
        clone_url="/tmp/none",
        base_branch="main",
        bot_login=bot,
        trigger_label=label,
        secret="s",
        agents={a: AgentSnapshot(a, "command", {}) for a in agents},
        triggers=frozenset(triggers),
    )


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_body(name))
    return data


def run(
    name: str, data: dict[str, Any], proj: ProjectSnapshot
) -> tuple[list[tuple[str, str]], str]:
    event = parse(name.split(".")[0], "d1", json.dumps(data).encode())
    result = evaluate(event, proj)
    return [(r.agent_type, r.work_item) for r in result.requests], result.reason


def test_issue_labeled_with_the_trigger_label_starts_implementation() -> None:
    data = payload("issues.labeled")
    assert run("issues.labeled", data, project(label="bug")) == (
        [("implementation", "1")],
        "issues.labeled → implementation",
    )
    requests, reason = run("issues.labeled", data, project(label="gaffer"))
    assert requests == []
    assert "label 'bug' is not the trigger label 'gaffer'" in reason


def test_issue_request_carries_the_work_item() -> None:
    event = parse("issues", "d1", fixture_body("issues.labeled"))
    [request] = evaluate(event, project(label="BUG")).requests
    assert request.title == "Spelling error in the README file"
    assert request.body.startswith("It looks like you accidently spelled")
    assert request.trigger == "issues.labeled"
    assert request.delivery_id == "d1"
    assert request.payload == json.loads(fixture_body("issues.labeled"))


def test_comment_mentioning_the_bot() -> None:
    data = payload("issue_comment.created")
    assert run("issue_comment.created", data, project())[0] == []
    data["comment"]["body"] = "@gaffer-bot please fix this"
    assert run("issue_comment.created", data, project()) == (
        [("implementation", "1")],
        "issue_comment.created → implementation",
    )
    # Same comment on a pull request: respond-to-pr-comment on the PR.
    data["issue"]["pull_request"] = {"url": "https://api.github.com/repos/x/y/pulls/1"}
    assert run("issue_comment.created", data, project())[0] == [("respond-to-pr-comment", "1")]


@pytest.mark.parametrize(
    "body", ["hi @gaffer-botty", "email gaffer-bot@example.com", "@@gaffer-bot2", "no mention"]
)
def test_near_miss_mentions_do_not_trigger(body: str) -> None:
    data = payload("issue_comment.created")
    data["comment"]["body"] = body
    assert run("issue_comment.created", data, project())[0] == []


def test_pull_request_opened_reviews_unless_draft() -> None:
    data = payload("pull_request.opened")
    assert run("pull_request.opened", data, project())[0] == [("review", "2")]
    data["pull_request"]["draft"] = True
    requests, reason = run("pull_request.opened", data, project())
    assert requests == [] and "draft" in reason


def test_review_requested_only_from_the_bot() -> None:
    data = payload("pull_request.review_requested")
    requests, reason = run("pull_request.review_requested", data, project())
    assert requests == [] and "'octocat'" in reason
    data["requested_reviewer"]["login"] = "gaffer-bot"
    assert run("pull_request.review_requested", data, project())[0] == [("review", "2")]


def test_check_suite_success_reviews_failure_responds() -> None:
    data = payload("check_suite.completed")
    event = parse("check_suite", "d1", json.dumps(data).encode())
    [review] = evaluate(event, project()).requests
    assert (review.agent_type, review.pr_number, review.head_sha) == (
        "review",
        2,
        "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    )
    data["check_suite"]["conclusion"] = "failure"
    assert run("check_suite.completed", data, project())[0] == [("respond-to-ci", "2")]
    data["check_suite"]["conclusion"] = "cancelled"
    assert run("check_suite.completed", data, project())[0] == []


def test_check_suite_without_pull_request_is_ignored() -> None:
    data = payload("check_suite.completed")
    data["check_suite"]["pull_requests"] = []
    requests, reason = run("check_suite.completed", data, project())
    assert requests == [] and "not on a pull request" in reason


def test_check_suite_on_two_pull_requests_makes_two_requests() -> None:
    data = payload("check_suite.completed")
    second = json.loads(json.dumps(data["check_suite"]["pull_requests"][0]))
    second["number"] = 7
    data["check_suite"]["pull_requests"].append(second)
    assert run("check_suite.completed", data, project())[0] == [("review", "2"), ("review", "7")]


def test_changes_requested_responds_to_review() -> None:
    data = payload("pull_request_review.submitted")
    assert run("pull_request_review.submitted", data, project())[0] == []
    data["review"]["state"] = "changes_requested"
    assert run("pull_request_review.submitted", data, project())[0] == [("respond-to-review", "2")]


def test_loop_guard_ignores_the_bots_own_events() -> None:
    data = payload("issues.labeled")
    data["sender"]["login"] = "Gaffer-Bot"
    requests, reason = run("issues.labeled", data, project(label="bug"))
    assert requests == []
    assert reason == "sender Gaffer-Bot is the project's bot (loop guard)"


def test_disabled_trigger_or_agent_is_ignored_with_reason() -> None:
    data = payload("issues.labeled")
    requests, reason = run(
        "issues.labeled",
        data,
        project(label="bug", disabled={("implementation", "issues.labeled")}),
    )
    assert requests == [] and "implementation: not enabled for issues.labeled" in reason
    requests, reason = run("issues.labeled", data, project(label="bug", agents=["review"]))
    assert requests == [] and "not enabled" in reason


def test_unknown_event_names_no_trigger() -> None:
    requests, reason = run("push.event", payload("push.event"), project())
    assert requests == [] and reason == "no trigger listens to push"


def test_new_projects_enable_exactly_the_events_of_the_trigger_table() -> None:
    """The table of the issue "The main job end to end", part 4, as new projects get it."""
    assert {a.value: default_events(a.value) for a in AgentType} == {
        "planning": [],
        "implementation": ["issue_comment.created", "issues.labeled"],
        "review": [
            "check_suite.completed",
            "pull_request.opened",
            "pull_request.review_requested",
        ],
        "respond-to-review": ["pull_request_review.submitted"],
        "respond-to-ci": ["check_suite.completed"],
        "respond-to-pr-comment": ["issue_comment.created"],
        # No webhook starts these (runs start does; debug follows failed runs).
        "resolve-conflicts": [],
        "debug": [],
    }
