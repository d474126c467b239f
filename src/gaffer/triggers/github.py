"""The GitHub trigger table: which events start which agents.

=================================  ========================  ==================================
event key                          agent                     condition
=================================  ========================  ==================================
``issues.labeled``                 implementation            label is the project's trigger label
``issue_comment.created``          implementation            comment mentions the bot, on an issue
``issue_comment.created``          respond-to-pr-comment     comment mentions the bot, on a PR
``pull_request.opened``            review                    PR is not a draft
``pull_request.review_requested``  review                    the requested reviewer is the bot
``check_suite.completed``          review                    conclusion success, on a PR
``check_suite.completed``          respond-to-ci             conclusion failure, on a PR
``pull_request_review.submitted``  respond-to-review         review state is changes_requested
=================================  ========================  ==================================

Each row must also be enabled for the project (a trigger config row, with its agent enabled).
Events whose sender is the project's bot are ignored before any rule runs: the loop guard, so
that gaffer's own comments and pushes never trigger gaffer again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from gaffer.agents import AgentType
from gaffer.agents.definition import definition
from gaffer.providers.events import Event
from gaffer.providers.github_api.senders.markers import is_gaffer_post
from gaffer.runs.requests import AgentRequest
from gaffer.store.projects import AgentSetup, ProjectSnapshot

# A rule's condition returns the requests it makes, or the reason it makes none.
Condition = Callable[[Event, ProjectSnapshot, AgentType], "list[AgentRequest] | str"]


@dataclass(frozen=True)
class Rule:
    """One row of the trigger table."""

    event: str
    agent: AgentType
    condition: Condition


@dataclass(frozen=True)
class TriggerResult:
    """What the table made of one event: the requests, or why there are none."""

    requests: list[AgentRequest]
    reason: str


def _mentions(text: str | None, login: str) -> bool:
    if not text:
        return False
    return re.search(rf"(?<![\w@])@{re.escape(login)}(?![\w-])", text, re.IGNORECASE) is not None


def _request(
    event: Event,
    project: ProjectSnapshot,
    agent: AgentType,
    *,
    pr_number: int | None = None,
    head_sha: str | None = None,
) -> AgentRequest:
    item = event.work_item
    work_item = item.number if item is not None else str(pr_number)
    pr = next((p for p in event.pull_requests if p.number == pr_number), None)
    return AgentRequest(
        project_id=project.id,
        agent_type=agent.value,
        provider=event.provider,
        trigger=event.key,
        work_item=work_item,
        title=item.title if item else (pr.title if pr else ""),
        body=item.body if item else (pr.body if pr else ""),
        url=item.url if item else (pr.url if pr else None),
        pr_number=pr_number,
        head_sha=head_sha if head_sha is not None else event.head_sha,
        delivery_id=event.delivery_id,
        head_branch=pr.head_ref if pr else None,
        base_branch=pr.base_ref if pr else None,
        head_repository=pr.head_repository if pr else None,
        comment_body=event.comment or None,
        comment_id=event.comment_id,
        review_id=event.review_id,
        payload=event.payload,
    )


def _labeled(event: Event, project: ProjectSnapshot, agent: AgentType) -> list[AgentRequest] | str:
    if event.work_item is None:
        return "labeled event has no issue"
    if (event.label or "").casefold() != project.trigger_label.casefold():
        return f"label {event.label!r} is not the trigger label {project.trigger_label!r}"
    return [_request(event, project, agent)]


def _comment_on(on_pr: bool) -> Condition:
    def condition(
        event: Event, project: ProjectSnapshot, agent: AgentType
    ) -> list[AgentRequest] | str:
        item = event.work_item
        if item is None:
            return "comment has no issue"
        if item.is_pull_request != on_pr:
            return f"comment is on {'an issue' if on_pr else 'a pull request'}"
        if not _mentions(event.comment, project.bot_login):
            return f"comment does not mention @{project.bot_login}"
        pr_number = int(item.number) if on_pr else None
        return [_request(event, project, agent, pr_number=pr_number)]

    return condition


def _pr_opened(
    event: Event, project: ProjectSnapshot, agent: AgentType
) -> list[AgentRequest] | str:
    pr = event.pull_requests[0]
    if pr.draft:
        return "pull request is a draft"
    return [_request(event, project, agent, pr_number=pr.number, head_sha=pr.head_sha)]


def _review_requested(
    event: Event, project: ProjectSnapshot, agent: AgentType
) -> list[AgentRequest] | str:
    if (event.requested_reviewer or "").casefold() != project.bot_login.casefold():
        return f"review requested from {event.requested_reviewer!r}, not @{project.bot_login}"
    pr = event.pull_requests[0]
    return [_request(event, project, agent, pr_number=pr.number, head_sha=pr.head_sha)]


def _suite_concluded(conclusion: str) -> Condition:
    def condition(
        event: Event, project: ProjectSnapshot, agent: AgentType
    ) -> list[AgentRequest] | str:
        if event.conclusion != conclusion:
            return f"check suite concluded {event.conclusion!r}"
        if not event.pull_requests:
            return "check suite is not on a pull request"
        return [
            _request(event, project, agent, pr_number=pr.number, head_sha=event.head_sha)
            for pr in event.pull_requests
        ]

    return condition


def _changes_requested(
    event: Event, project: ProjectSnapshot, agent: AgentType
) -> list[AgentRequest] | str:
    if (event.review_state or "").casefold() != "changes_requested":
        return f"review state is {event.review_state!r}, not changes_requested"
    pr = event.pull_requests[0]
    return [_request(event, project, agent, pr_number=pr.number, head_sha=pr.head_sha)]


RULES: tuple[Rule, ...] = (
    Rule("issues.labeled", AgentType.IMPLEMENTATION, _labeled),
    Rule("issue_comment.created", AgentType.IMPLEMENTATION, _comment_on(on_pr=False)),
    Rule("issue_comment.created", AgentType.RESPOND_TO_PR_COMMENT, _comment_on(on_pr=True)),
    Rule("pull_request.opened", AgentType.REVIEW, _pr_opened),
    Rule("pull_request.review_requested", AgentType.REVIEW, _review_requested),
    Rule("check_suite.completed", AgentType.REVIEW, _suite_concluded("success")),
    Rule("check_suite.completed", AgentType.RESPOND_TO_CI, _suite_concluded("failure")),
    Rule("pull_request_review.submitted", AgentType.RESPOND_TO_REVIEW, _changes_requested),
)


def default_events(agent: str) -> list[str]:
    """The event keys the table can start ``agent`` with (enabled on new projects)."""
    return sorted({rule.event for rule in RULES if rule.agent == agent})


def default_agent_setups(
    engine: str, engine_settings: dict[str, Any], agents: Iterable[str] | None = None
) -> list[AgentSetup]:
    """Setups for ``agents`` (default: :func:`default_agents`), all on one engine, each enabled
    for the events this table can start it with. Used by ``projects create`` and the demo."""
    chosen = list(agents) if agents is not None else default_agents()
    return [AgentSetup(a, engine, dict(engine_settings), default_events(a)) for a in chosen]


def default_agents() -> list[str]:
    """The agent types new projects enable: those whose definition is enabled by default
    (``debug`` is not)."""
    return [a.value for a in AgentType if definition(a.value).enabled_by_default]


def evaluate(event: Event, project: ProjectSnapshot) -> TriggerResult:
    """Run the table on ``event`` for ``project``.

    Returns the requests to run (possibly several: a check suite on two PRs) and a reason
    that explains the decision, also when nothing matched.
    """
    if event.sender and event.sender.casefold() == project.bot_login.casefold():
        return TriggerResult([], f"sender {event.sender} is the project's bot (loop guard)")
    if is_gaffer_post(event.comment):
        # gaffer's own post (its hidden marker), even when it posts as a person's PAT.
        return TriggerResult([], "the comment is gaffer's own post (loop guard)")
    rules = [rule for rule in RULES if rule.event == event.key]
    if not rules:
        return TriggerResult([], f"no trigger listens to {event.key}")
    requests: list[AgentRequest] = []
    misses: list[str] = []
    for rule in rules:
        if not project.trigger_enabled(rule.agent.value, rule.event):
            misses.append(f"{rule.agent.value}: not enabled for {rule.event}")
            continue
        outcome = rule.condition(event, project, rule.agent)
        if isinstance(outcome, str):
            misses.append(f"{rule.agent.value}: {outcome}")
        else:
            requests.extend(outcome)
    if requests:
        agents = ", ".join(sorted({r.agent_type for r in requests}))
        return TriggerResult(requests, f"{event.key} → {agents}")
    return TriggerResult([], "; ".join(misses))
