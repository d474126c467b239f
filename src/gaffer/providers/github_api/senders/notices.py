"""Post a comment that follows from no run (a trigger ignored over a cap or budget), once.

The comment carries ``<!-- gaffer:notice=<id> -->`` (so the loop guard ignores it). Before
creating it the issue/PR's comments are searched for that marker, so a notifier that crashed
between GitHub's create and the outbox record does not post it twice.
"""

from __future__ import annotations

from gaffer.providers.github_api.client import GitHubClient
from gaffer.providers.github_api.senders.comments import PostedComment, find_comment
from gaffer.providers.github_api.senders.markers import notice_marker


async def post_notice(
    client: GitHubClient, number: int, notice_id: str, body: str
) -> PostedComment:
    """Make sure issue/PR ``number`` has the comment of ``notice_id`` (``body`` and its
    marker): post it unless one already carries the marker (then it is left as it is:
    ``created`` False). Raises ``ValueError`` for a bad ``notice_id``, ``GitHubError``
    subclasses."""
    mark = notice_marker(notice_id)
    existing = await find_comment(client, number, lambda text: bool(text) and mark in str(text))
    if existing is not None:
        found_id, url, _ = existing
        return PostedComment(id=found_id, url=url, created=False)
    o, r = client.owner, client.name
    text = f"{body.rstrip()}\n\n{mark}"
    made = await client.call(
        "POST /repos/{owner}/{repo}/issues/{issue_number}/comments",
        lambda gh: gh.rest.issues.async_create_comment(o, r, number, body=text),
    )
    return PostedComment(id=made.parsed_data.id, url=made.parsed_data.html_url, created=True)
