"""Post a marked issue/PR comment once, or update it in place."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.errors import GitHubNotFoundError
from gaffer.providers.github_api.senders.markers import has_marker, with_marker

PER_PAGE = 100
MAX_PAGES = 30


class PostedComment(BaseModel):
    """A comment on GitHub: its id and URL; ``created`` is False when an existing one (found
    by id or by marker) was updated or left as it was."""

    id: int
    url: str
    created: bool


async def find_marked_comment(
    client: GitHubClient, number: int, run_id: str, kind: str | None
) -> tuple[int, str, str] | None:
    """(id, html_url, body) of the newest comment on issue/PR ``number`` carrying the marker
    of ``run_id``/``kind``, or None."""
    return await find_comment(client, number, lambda body: has_marker(body, run_id, kind))


async def find_comment(
    client: GitHubClient, number: int, matches: Callable[[str | None], bool]
) -> tuple[int, str, str] | None:
    """(id, html_url, body) of the newest comment on issue/PR ``number`` whose body
    ``matches``, or None (up to ``MAX_PAGES`` pages of ``PER_PAGE``). Raises ``GitHubError``
    subclasses."""
    o, r = client.owner, client.name
    found: tuple[int, str, str] | None = None
    for page in range(1, MAX_PAGES + 1):
        batch: list[Any] = (
            await client.call(
                "GET /repos/{owner}/{repo}/issues/{issue_number}/comments",
                lambda gh, p=page: gh.rest.issues.async_list_comments(  # type: ignore[misc]
                    o, r, number, per_page=PER_PAGE, page=p
                ),
            )
        ).parsed_data
        for c in batch:
            if matches(c.body):
                found = (c.id, c.html_url, c.body or "")
        if len(batch) < PER_PAGE:
            break
    return found


async def upsert_comment(
    client: GitHubClient,
    number: int,
    run_id: str,
    body: str,
    *,
    kind: str | None = None,
    comment_id: int | None = None,
) -> PostedComment:
    """Make the comment of ``run_id``/``kind`` on issue/PR ``number`` read ``body`` (the
    marker is appended). ``comment_id``: its id when gaffer recorded one (a 404 there falls
    back to the search). Otherwise the comments are searched for the marker first, and a new
    comment is posted only when none carries it. Raises ``GitHubError`` subclasses."""
    o, r = client.owner, client.name
    text = with_marker(body, run_id, kind)
    if comment_id is not None:
        try:
            got = await client.call(
                "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}",
                lambda gh: gh.rest.issues.async_update_comment(o, r, comment_id, body=text),
            )
            return PostedComment(id=got.parsed_data.id, url=got.parsed_data.html_url, created=False)
        except GitHubNotFoundError:
            pass
    existing = await find_marked_comment(client, number, run_id, kind)
    if existing is not None:
        found_id, url, old = existing
        if old != text:
            await client.call(
                "PATCH /repos/{owner}/{repo}/issues/comments/{comment_id}",
                lambda gh: gh.rest.issues.async_update_comment(o, r, found_id, body=text),
            )
        return PostedComment(id=found_id, url=url, created=False)
    made = await client.call(
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
        lambda gh: gh.rest.issues.async_create_comment(o, r, number, body=text),
    )
    return PostedComment(id=made.parsed_data.id, url=made.parsed_data.html_url, created=True)
