"""The GitHub side of a run's start: context in, a short-lived token for the worker's git.

Called by the dispatcher just after it claimed a run (QUEUED -> STARTING) and before it starts
the worker. For a project with GitHub credentials
(:mod:`gaffer.providers.github_api.credential_store`):

1. fetch the context the agent needs (issue, PR with its capped diff, the review answered,
   the mentioning comment, failed check runs for ``respond-to-ci``) into
   ``job.task.context["github"]`` and the context files into ``job.task.context["files"]``,
   and fill ``head_branch``/``base_branch``/``head_sha``/``head_repository``/``comment_body``
   when the event did not name them;
2. refuse a run that must not start (:func:`start_refusal`: a PR closed or merged
   meanwhile, a ``pr-head`` agent on a PR from a fork): the run ends CANCELED with the reason;
3. mint the installation token for the one repository with the agent's permissions
   (:func:`permissions_for`) and hand it to the worker as ``GAFFER_GIT_TOKEN``; the job's
   clone URL becomes the HTTPS URL of the repository on the project's GitHub (no credential
   in it).

The started job (context filled in, never the token) is kept on the run's row
(``runs.job_data``, :func:`keep_started_job`), so a run taken up again (its start retried
after the dispatcher restarted, or its worker re-attached) works from it rather than from the
event's data (:func:`started_job`): the same context, and the same head SHA for its check run.

A project without credentials starts as before (public clone URL, no context).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError

from gaffer.backends.base import PermanentStartError
from gaffer.providers.github_api.context import fetch_context
from gaffer.providers.github_api.context_files import context_files, start_refusal
from gaffer.providers.github_api.context_models import ContextRequest, RunContext
from gaffer.providers.github_api.credential_store import load_credentials
from gaffer.providers.github_api.credentials import DEFAULT_BASE_URL, Credentials
from gaffer.providers.github_api.errors import GitHubError
from gaffer.providers.github_api.git_auth import clone_url
from gaffer.providers.github_api.permissions import BranchMode, permissions_for
from gaffer.providers.github_api.token_cache import TokenCache
from gaffer.queue.jobs import JobData
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database
from gaffer.store.models import Run
from gaffer.store.runs import set_fields

GIT_TOKEN_ENV = "GAFFER_GIT_TOKEN"
"""The worker's environment variable for its own git's token (see ``worker/git.py``)."""


def web_url_of(api_url: str) -> str:
    """The web (and git) root of a GitHub whose REST root is ``api_url``:
    ``https://api.github.com`` -> ``https://github.com``; GHES ``https://HOST/api/v3`` ->
    ``https://HOST``; any other root (a test server serving both) is its own web root."""
    root = api_url.rstrip("/")
    if root == DEFAULT_BASE_URL:
        return "https://github.com"
    if root.endswith("/api/v3"):
        return root[: -len("/api/v3")]
    return root


def branch_mode_of(data: JobData) -> BranchMode:
    """The run's branch mode (``new`` for a job written before agent definitions)."""
    return data.agent.branch_mode if data.agent is not None else "new"


@dataclass
class GitHubStart:
    """What the start step decided. ``refusal``: end the run CANCELED with this reason and
    start no worker. ``data``: the job to start (context filled in). ``env``: extra worker
    environment (the git token)."""

    data: JobData
    env: dict[str, str] = field(default_factory=dict)
    refusal: str | None = None


@dataclass(frozen=True)
class ProjectGitHub:
    """A project's GitHub credentials and API root, as loaded from the store."""

    credentials: Credentials
    api_url: str


def load_project_github(
    db: Database, box: SecretBox | None, project_id: str
) -> ProjectGitHub | None:
    """The project's GitHub credentials, or None when it has none (or no master key)."""
    if box is None:
        return None
    with db.session() as session:
        found = load_credentials(session, box, project_id)
    if found is None:
        return None
    credentials, api_url = found
    return ProjectGitHub(credentials, api_url or DEFAULT_BASE_URL)


def work_item_number(data: JobData) -> int | None:
    """The issue or PR number of the run's work item, or None when it is not a number."""
    if data.task.pr_number is not None:
        return data.task.pr_number
    item = data.task.work_item
    return int(item) if item.isdigit() else None


def context_request(data: JobData, number: int) -> ContextRequest:
    """What to fetch for the run of ``data`` on issue/PR ``number``."""
    is_pr = data.task.pr_number is not None
    return ContextRequest(
        number=number,
        is_pull_request=is_pr,
        comment_id=data.task.comment_id,
        review_id=data.task.review_id,
        failed_checks=data.agent_type == "respond-to-ci",
        head_sha=data.task.head_sha,
    )


def context_entries(context: RunContext) -> dict[str, object]:
    """The job's context entries of ``context``: ``github`` (everything fetched, JSON) and one
    text entry per context file, named ``github-<path>`` with ``/`` and ``.`` as ``-``
    (``github-issue``, ``github-pr``, ``github-pr-diff``, ``github-review``,
    ``github-trigger-comment``, ``github-ci-<check>-<id>``); the worker writes each to
    ``<scratch>/context/<name>.md`` (or ``.json``)."""
    entries: dict[str, object] = {"github": context.model_dump(mode="json")}
    for path, text in context_files(context).items():
        stem = path.removesuffix(".md").replace("/", "-").replace(".", "-")
        entries[f"github-{stem}"] = text
    return entries


def apply_context(data: JobData, context: RunContext, web_url: str) -> JobData:
    """A copy of ``data`` with ``context`` in its task, the PR's facts filled where the event
    left them out, and the clone URL on ``web_url``."""
    task = data.task.model_copy(deep=True)
    pr = context.pull_request
    if pr is not None:
        task.head_branch = task.head_branch or pr.head_ref
        task.base_branch = task.base_branch or pr.base_ref
        task.head_sha = task.head_sha or pr.head_sha
        if task.head_repository is None:
            task.head_repository = None if pr.from_fork else context.repository
    if task.comment_body is None:
        if context.trigger_comment is not None:
            task.comment_body = context.trigger_comment.body
        elif context.review is not None and context.review.body:
            task.comment_body = context.review.body
    task.title = task.title or context.issue.title
    task.body = task.body or context.issue.body
    task.context = {**task.context, **context_entries(context)}
    repository = data.repository.model_copy(
        update={"clone_url": clone_url(web_url, data.repository.full_name)}
    )
    return data.model_copy(update={"task": task, "repository": repository})


def started_job(stored: dict[str, Any] | None, data: JobData) -> JobData:
    """The job a run taken up again works from: the one kept on its row (``stored``,
    ``runs.job_data``) when it is the started job of the same run (it holds the GitHub
    context fetched at start), else ``data`` (the event's job)."""
    if not stored:
        return data
    try:
        kept = JobData.model_validate(stored)
    except ValidationError:
        return data
    if kept.run_id != data.run_id or "github" not in kept.task.context:
        return data
    return kept


def _stored_job(db: Database, run_id: str) -> dict[str, Any] | None:
    with db.session() as session:
        run = session.get(Run, run_id)
        return run.job_data if run is not None else None


def keep_started_job(db: Database, data: JobData) -> None:
    """Write the started job ``data`` to its run's ``job_data`` (it holds no token: that goes
    to the worker's environment only)."""
    with db.session() as session:
        set_fields(session, data.run_id, job_data=data.model_dump(mode="json"))


async def start_on_github(
    db: Database,
    box: SecretBox | None,
    redis: aioredis.Redis,
    data: JobData,
) -> GitHubStart:
    """The start step for ``data`` (see the module docstring): from the started job kept on
    the run's row when there is one (a retried start), and keeping the new one there. Without
    credentials, returns ``data`` unchanged.

    Raises :class:`~gaffer.providers.github_api.errors.GitHubError` when GitHub cannot be
    reached or refuses (the caller fails the start with the reason)."""
    project = await asyncio.to_thread(load_project_github, db, box, data.project_id)
    if project is None or box is None:
        return GitHubStart(data)
    data = started_job(await asyncio.to_thread(_stored_job, db, data.run_id), data)
    mode = branch_mode_of(data)
    # githubkit costs seconds to import: not for every CLI command that imports this module.
    from gaffer.providers.github_api.client import GitHubClient

    client = GitHubClient(
        project.credentials,
        data.repository.full_name,
        permissions=permissions_for(mode),
        base_url=project.api_url,
        cache=TokenCache(redis, box),
    )
    number = work_item_number(data)
    started = data
    if number is not None:
        context = await fetch_context(client, context_request(data, number))
        refusal = start_refusal(context, mode)
        if refusal is not None:
            return GitHubStart(data, refusal=refusal)
        started = apply_context(data, context, web_url_of(project.api_url))
    else:
        repository = data.repository.model_copy(
            update={"clone_url": clone_url(web_url_of(project.api_url), data.repository.full_name)}
        )
        started = data.model_copy(update={"repository": repository})
    token = await client.token(min_remaining_s=data.timeout_s)
    await asyncio.to_thread(keep_started_job, db, started)
    return GitHubStart(started, env={GIT_TOKEN_ENV: token})


def start_error(exc: Exception) -> Exception:
    """The error a failed start is handled as: a GitHub refusal that a retry cannot change
    (401/403/404/422) becomes a :class:`PermanentStartError` (the run fails at once with
    GitHub's reason); anything else is returned as is (retried with backoff)."""
    if isinstance(exc, GitHubError) and not exc.retryable:
        return PermanentStartError(f"GitHub: {exc.reason}")
    return exc
