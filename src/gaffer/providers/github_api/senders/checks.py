"""The check run ``gaffer / <agent>`` on the head SHA of a PR agent's run."""

from __future__ import annotations

from typing import Any, Literal, cast

from pydantic import BaseModel

from gaffer.providers.github_api.client import GitHubClient

CheckConclusion = Literal[
    "success", "failure", "neutral", "cancelled", "timed_out", "action_required", "skipped"
]
SUMMARY_CAP = 65535  # GitHub's limit on output.summary and output.text (characters)


class CheckRunRef(BaseModel):
    """A check run on GitHub; ``created`` is False when the run's own was found."""

    id: int
    url: str | None
    created: bool


def check_name(agent: str) -> str:
    """``gaffer / <agent>``."""
    return f"gaffer / {agent}"


async def start_check_run(
    client: GitHubClient,
    *,
    head_sha: str,
    agent: str,
    run_id: str,
    details_url: str | None = None,
    title: str = "Running",
) -> CheckRunRef:
    """Create the check run of run ``run_id`` as ``in_progress`` on ``head_sha`` (its
    ``external_id`` is the run id), or return the one already there. Raises ``GitHubError``."""
    o, r = client.owner, client.name
    name = check_name(agent)
    runs: list[Any] = (
        await client.call(
            "GET /repos/{owner}/{repo}/commits/{ref}/check-runs",
            lambda gh: gh.rest.checks.async_list_for_ref(
                o, r, head_sha, check_name=name, filter_="all", per_page=100
            ),
        )
    ).parsed_data.check_runs
    for run in runs:
        if run.external_id == run_id:
            return CheckRunRef(id=run.id, url=run.html_url, created=False)
    payload: dict[str, Any] = {
        "name": name,
        "head_sha": head_sha,
        "status": "in_progress",
        "external_id": run_id,
        "output": {"title": title, "summary": f"gaffer run `{run_id}` is working on it."},
    }
    if details_url:
        payload["details_url"] = details_url
    made = (
        await client.call(
            "POST /repos/{owner}/{repo}/check-runs",
            lambda gh: gh.rest.checks.async_create(o, r, data=cast(Any, payload)),
        )
    ).parsed_data
    return CheckRunRef(id=made.id, url=made.html_url, created=True)


async def complete_check_run(
    client: GitHubClient,
    check_run_id: int,
    *,
    conclusion: CheckConclusion,
    title: str,
    summary: str,
    text: str | None = None,
) -> CheckRunRef:
    """Complete check run ``check_run_id`` with ``conclusion`` and an output (``summary`` and
    ``text`` cut to GitHub's 65535 characters). Idempotent (a PATCH). Raises ``GitHubError``."""
    o, r = client.owner, client.name
    output: dict[str, Any] = {"title": title[:255], "summary": summary[:SUMMARY_CAP]}
    if text:
        output["text"] = text[:SUMMARY_CAP]
    payload = {"status": "completed", "conclusion": conclusion, "output": output}
    made = (
        await client.call(
            "PATCH /repos/{owner}/{repo}/check-runs/{check_run_id}",
            lambda gh: gh.rest.checks.async_update(o, r, check_run_id, data=cast(Any, payload)),
        )
    ).parsed_data
    return CheckRunRef(id=made.id, url=made.html_url, created=False)
