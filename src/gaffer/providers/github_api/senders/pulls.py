"""Open the pull request of a pushed branch, or reuse the open one for that branch."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.errors import GitHubRequestError


class OpenedPullRequest(BaseModel):
    """A PR on GitHub; ``created`` is False when the branch's open PR was reused."""

    number: int
    url: str
    head_sha: str
    created: bool


async def find_open_pull_request(client: GitHubClient, head: str) -> OpenedPullRequest | None:
    """The open PR whose head is branch ``head`` of this repository, or None."""
    o, r = client.owner, client.name
    found: list[Any] = (
        await client.call(
            "GET /repos/{owner}/{repo}/pulls",
            lambda gh: gh.rest.pulls.async_list(o, r, head=f"{o}:{head}", state="open"),
        )
    ).parsed_data
    if not found:
        return None
    pr = found[0]
    return OpenedPullRequest(number=pr.number, url=pr.html_url, head_sha=pr.head.sha, created=False)


def _closing(number: int) -> re.Pattern[str]:
    return re.compile(
        rf"\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?\s+#{number}\b", re.IGNORECASE
    )


def pull_request_body(summary: str, closes: int | None) -> str:
    """A PR body from the agent's summary, with ``Closes #N`` when it answers issue N and the
    summary does not close it already (GitHub's closing keywords, "Linking a pull request to
    an issue using a keyword": close(s/d), fix(es/ed), resolve(s/d) ``#N``; a summary that
    merely mentions ``#N`` does not close it)."""
    text = summary.strip()
    if closes is not None and not _closing(closes).search(text):
        text = f"{text}\n\nCloses #{closes}" if text else f"Closes #{closes}"
    return text


async def open_or_reuse_pull_request(
    client: GitHubClient, *, head: str, base: str, title: str, body: str, draft: bool = False
) -> OpenedPullRequest:
    """The open PR from branch ``head`` to ``base``: the existing one (looked for first), or a
    new one with ``title`` and ``body``. If another writer opens it between the look and the
    create (GitHub answers 422 "A pull request already exists"), that one is returned.
    Raises ``GitHubError`` subclasses (422 also when ``head`` has no commits over ``base``).
    """
    existing = await find_open_pull_request(client, head)
    if existing is not None:
        return existing
    o, r = client.owner, client.name
    try:
        made = await client.call(
            "POST /repos/{owner}/{repo}/pulls",
            lambda gh: gh.rest.pulls.async_create(
                o, r, head=head, base=base, title=title, body=body, draft=draft
            ),
        )
    except GitHubRequestError as exc:
        if exc.status == 422 and "already exists" in exc.reason:
            raced = await find_open_pull_request(client, head)
            if raced is not None:
                return raced
        raise
    pr = made.parsed_data
    return OpenedPullRequest(number=pr.number, url=pr.html_url, head_sha=pr.head.sha, created=True)
