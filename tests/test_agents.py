"""Agent definitions: the shipped YAML validates, every template renders with the variables
its agent gets, a bad definition stops start-up with one line, overrides are checked before
anything is written, and output files are validated against their schemas."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gaffer.agents import AgentType
from gaffer.agents.definition import DefinitionError, definitions, load_definitions
from gaffer.agents.effective import InvalidOverrideError, effective_agent, validate_overrides
from gaffer.agents.outputs import read_output
from gaffer.agents.templates import TemplateError, render
from gaffer.queue.jobs import JobData
from gaffer.runs.engine import build_job
from gaffer.runs.requests import AgentRequest
from gaffer.settings import Settings
from gaffer.store.projects import AgentSnapshot, ProjectSnapshot
from gaffer.worker.checkout import Checkout, Workspace
from gaffer.worker.turns import template_variables

DEFINITIONS = Path(__file__).resolve().parents[1] / "src/gaffer/agents/definitions"


def project(agent: str) -> ProjectSnapshot:
    return ProjectSnapshot(
        id="p1",
        name="hello",
        organization_id="o1",
        repository="Codertocat/Hello-World",
        clone_url="/tmp/none",
        base_branch="main",
        bot_login="gaffer-bot",
        trigger_label="bug",
        secret="s",
        agents={agent: AgentSnapshot(agent, "command", {"command": "true"})},
        triggers=frozenset(),
    )


PR = {
    "pr_number": 2,
    "head_sha": "ec26c3e57ca3a959ca5aad62de7213c562f8c821",
    "head_branch": "changes",
    "base_branch": "master",
    "title": "Update the README with new information.",
    "body": "This is a pretty simple change that we need to pull into master.",
}
REQUESTS: dict[str, dict[str, object]] = {
    # What each agent's trigger gives it (see gaffer.triggers.github).
    "implementation": {"trigger": "issues.labeled", "title": "Spelling error", "body": "Fix it"},
    "planning": {"trigger": "manual", "title": "Plan the thing", "body": ""},
    "review": {"trigger": "pull_request.opened", **PR},
    "respond-to-review": {
        "trigger": "pull_request_review.submitted",
        "comment_body": "Please rename x.",
        "review_id": 237895671,
        **PR,
    },
    "respond-to-ci": {"trigger": "check_suite.completed", **PR},
    "respond-to-pr-comment": {
        "trigger": "issue_comment.created",
        "comment_body": "@gaffer-bot why?",
        "comment_id": 492700400,
        **PR,
    },
    "resolve-conflicts": {"trigger": "manual", **PR},
    "debug": {
        "trigger": "run.failed",
        "title": "Spelling error",
        "context": {
            "failed_run": {
                "id": "abc",
                "agent": "implementation",
                "status": "FAILED",
                "error": "engine exited 1",
                "log_tail": "Traceback ...",
            }
        },
    },
}


def job_for(agent: str) -> JobData:
    fields = dict(REQUESTS[agent])
    request = AgentRequest(
        project_id="p1",
        agent_type=agent,
        provider="github",
        work_item=str(fields.pop("pr_number", 1)) if "pr_number" in fields else "1",
        pr_number=REQUESTS[agent].get("pr_number"),  # type: ignore[arg-type]
        **fields,  # type: ignore[arg-type]
    )
    return build_job("r1", request, project(agent), Settings(master_key=None))


def test_every_agent_type_has_a_valid_definition() -> None:
    assert set(definitions()) == {a.value for a in AgentType}
    assert definitions()["debug"].enabled_by_default is False
    modes = {name: d.branch_mode for name, d in definitions().items()}
    assert modes["implementation"] == modes["planning"] == "new"
    assert modes["review"] == modes["debug"] == "read-only"
    assert {modes[a] for a in ("respond-to-review", "respond-to-ci", "resolve-conflicts")} == {
        "pr-head"
    }


@pytest.mark.parametrize("agent", sorted(REQUESTS))
def test_every_shipped_template_renders_with_the_variables_its_agent_gets(
    agent: str, tmp_path: Path
) -> None:
    job = job_for(agent)
    assert job.agent is not None
    checkout = Checkout(job.agent.branch_mode, "gaffer/x/1", None, False, "master")
    variables = template_variables(job, Workspace(tmp_path), checkout)
    system = render("system_prompt", job.agent.system_prompt, variables)
    task = render("task_prompt", job.agent.task_prompt, variables)
    assert "Codertocat/Hello-World" in system + task
    rule = job.agent.finish_rule
    if rule in ("review", "reply", "plan"):
        # The task says where the output goes and what it must look like.
        assert str(tmp_path / "scratch" / "out" / f"{rule}.json") in task
        assert '"properties"' in task
    if agent == "debug":
        assert "engine exited 1" in task and "Traceback" in task


def test_a_missing_variable_fails_loudly_and_never_renders_empty() -> None:
    with pytest.raises(TemplateError) as caught:
        render("task_prompt", "Fix #{{ work_item }}: {{ title }}", {"work_item": "7"})
    assert caught.value.variable == "title"
    assert str(caught.value) == "task_prompt: variable 'title' is undefined for this run"


def test_the_sandbox_refuses_python_internals() -> None:
    with pytest.raises(TemplateError, match="sandbox"):
        render("task_prompt", "{{ ''.__class__.__mro__ }}", {})


def test_a_bad_definition_stops_start_up_with_one_line_naming_file_and_field(
    tmp_path: Path,
) -> None:
    for path in DEFINITIONS.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    review = tmp_path / "review.yaml"
    review.write_text(review.read_text().replace("finish_rule: review", "finish_rule: reveiw"))
    with pytest.raises(DefinitionError) as caught:
        load_definitions(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("agents/definitions/review.yaml: finish_rule: Input should be")


def test_a_definition_template_using_an_undeclared_variable_is_refused(tmp_path: Path) -> None:
    for path in DEFINITIONS.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text())
    planning = tmp_path / "planning.yaml"
    planning.write_text(planning.read_text().replace("{{ plan_file }}", "{{ review_file }}"))
    with pytest.raises(DefinitionError, match=r"planning.yaml: task_prompt: .*'review_file'"):
        load_definitions(tmp_path)


def test_overrides_are_checked_before_anything_is_written() -> None:
    with pytest.raises(InvalidOverrideError, match="'pr_number', which is not among"):
        validate_overrides("implementation", {"task_prompt": "Fix PR {{ pr_number }}"})
    with pytest.raises(InvalidOverrideError, match="line 1"):
        validate_overrides("implementation", {"task_prompt": "{% if %}"})
    with pytest.raises(InvalidOverrideError, match="max_turns"):
        validate_overrides("review", {"max_turns": 0})
    with pytest.raises(InvalidOverrideError, match="base_url: must not carry credentials"):
        validate_overrides("review", {"base_url": "https://user:pw@api.example/v1"})


def test_the_effective_definition_says_where_each_field_came_from() -> None:
    effective = effective_agent(
        "review", "claude-code", {"model": "m", "max_turns": 5}, default_credential="K"
    )
    assert effective.spec.max_turns == 5
    assert effective.spec.continuation_turns == definitions()["review"].continuation_turns
    fields = effective.as_dict()["fields"]
    assert fields["max_turns"] == {"value": 5, "source": "project override"}
    assert fields["continuation_turns"]["source"] == "package"
    assert fields["credential"] == {"value": "K", "source": "engine default"}
    assert fields["engine"] == {"value": "claude-code", "source": "project override"}


def test_an_invalid_output_file_counts_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "review.json"
    assert read_output("review", path) == (None, f"no file at {path}")
    path.write_text("{not json")
    assert read_output("review", path)[1].startswith(f"{path} is not JSON")  # type: ignore[union-attr]
    path.write_text(json.dumps({"event": "APPROVE", "body": "ok", "extra": 1}))
    output, problem = read_output("review", path)
    assert output is None and problem is not None and "extra: Extra inputs" in problem
    path.write_text(json.dumps({"event": "APPROVE", "body": "ok", "comments": []}))
    output, problem = read_output("review", path)
    assert problem is None and output is not None
