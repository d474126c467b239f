"""The demo's GitHub: the stand-in shipped in the package (:mod:`gaffer.demo.github`), seeded
with the repository the fixture payloads describe, and what the runs left on it.

:func:`start_demo_github` starts the stand-in and seeds it: ``Codertocat/Hello-World`` (default
branch ``master``, as in the payloads) backed by a bare repository served over git smart HTTP,
issue #1 and pull request #2 (head ``changes``) with the payloads' titles and bodies, and the
demo's GitHub App installed on it. The project gets that App's credentials with
``base_url`` = the stand-in (as ``gaffer github set-app --api-url`` stores them), so each run
mints an installation token for its worker's git and the notifier posts the ack, the PR and
the review there. :meth:`DemoGitHub.payload` puts the seeded commits' SHAs into a fixture
payload (GitHub's payloads name the repository's real commits). :func:`read_back` collects,
per run, the ack comment's final text, the pull request it opened and the review it
submitted, from the stand-in's state. Nothing here touches the network beyond loopback.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from gaffer.demo.github.auth import App
from gaffer.demo.github.server import GitHubStandIn
from gaffer.demo.github.state import Repository
from gaffer.demo.repository import PR_BRANCH, diff, seed_repository
from gaffer.providers.github_api.credentials import AppCredentials
from gaffer.providers.github_api.senders.markers import MARKER_RE, has_marker
from gaffer.runtime import Runtime
from gaffer.store.models import OutboxStatus
from gaffer.store.outbox import entries_for_run

REPOSITORY = "Codertocat/Hello-World"
DEFAULT_BRANCH = "master"
"""The payloads' ``repository.default_branch`` (and the PR's base)."""
APP_SLUG = "gaffer-demo"
REVIEW_MARKER_KIND = "review"
"""The marker kind of a review gaffer submits (``senders/reviews.py``)."""
FINAL = {OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.SUPERSEDED}


@dataclass
class DemoGitHub:
    """The started, seeded stand-in. ``heads``: branch -> seeded commit SHA;
    ``replacements``: a fixture payload's SHA -> the seeded commit it stands for."""

    hub: GitHubStandIn
    repo: Repository
    installation_id: int
    heads: dict[str, str]
    replacements: dict[str, str]

    @property
    def git_dir(self) -> Path:
        """The bare repository the stand-in serves as ``{web_url}/Codertocat/Hello-World.git``."""
        assert self.repo.git_dir is not None
        return self.repo.git_dir

    @property
    def clone_url(self) -> str:
        """The HTTPS-style clone URL on the stand-in (no credential in it)."""
        return f"{self.hub.web_url}/{REPOSITORY}.git"

    def credentials(self) -> AppCredentials:
        """The App credentials of the project: the stand-in's App, its installation."""
        return AppCredentials(
            app_id=self.hub.app.id,
            private_key_pem=SecretStr(self.hub.app.private_key_pem),
            installation_id=self.installation_id,
        )

    def payload(self, body: bytes) -> bytes:
        """A fixture payload with the seeded commits' SHAs for the fixture's ones."""
        for old, new in self.replacements.items():
            body = body.replace(old.encode(), new.encode())
        return body


def start_demo_github(root: Path, fixtures: Path) -> DemoGitHub:
    """The stand-in, started and seeded from the ``fixtures`` (see the module docstring); its
    repositories live under ``root``. Stop it with ``.hub.stop()``. Raises ``RuntimeError``
    when it does not start, ``OSError``/``KeyError`` for a missing or odd fixture."""
    hub = GitHubStandIn(root, App.generate(slug=APP_SLUG)).start()
    try:
        return seed(hub, root, fixtures)
    except BaseException:
        hub.stop()
        raise


def seed(hub: GitHubStandIn, root: Path, fixtures: Path) -> DemoGitHub:
    """Seed ``hub`` with the repository, issue #1 and PR #2 of the fixture payloads."""
    issue = json.loads((fixtures / "issues.labeled.json").read_text())["issue"]
    pr = json.loads((fixtures / "pull_request.opened.json").read_text())["pull_request"]
    repo = hub.add_repo(REPOSITORY, git=True, default_branch=DEFAULT_BRANCH)
    assert repo.git_dir is not None
    heads = seed_repository(repo.git_dir, root / "seed", DEFAULT_BRANCH, pr_branch=PR_BRANCH)
    owner = REPOSITORY.split("/")[0]
    installation = hub.add_installation(owner, [repo.name])
    hub.add_issue(repo, issue["title"], issue.get("body") or "", author=issue["user"]["login"])
    hub.add_pull(
        repo,
        PR_BRANCH,
        heads[PR_BRANCH],
        diff(repo.git_dir, heads[DEFAULT_BRANCH], heads[PR_BRANCH]),
        title=pr["title"],
        body=pr.get("body") or "",
        base_ref=DEFAULT_BRANCH,
        base_sha=heads[DEFAULT_BRANCH],
        author=pr["user"]["login"],
    )
    replacements = {
        pr["head"]["sha"]: heads[PR_BRANCH],
        pr["base"]["sha"]: heads[DEFAULT_BRANCH],
    }
    return DemoGitHub(hub, repo, installation.id, heads, replacements)


def outbox_states(rt: Runtime, run_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Run id -> its outbox entries, oldest first: ``{"kind", "status", "error"}``."""
    with rt.db.session() as session:
        return {
            run_id: [
                {"kind": e.kind, "status": str(e.status), "error": e.last_error}
                for e in entries_for_run(session, run_id)
            ]
            for run_id in run_ids
        }


def _all_sent(entries: list[dict[str, Any]]) -> bool:
    kinds = [e["kind"] for e in entries]
    final = all(OutboxStatus(e["status"]) in FINAL for e in entries)
    # The run's last write is the ack's final update: until it is there, more will come.
    return final and bool(kinds) and kinds[-1] == "ack_update"


async def wait_for_outbox(
    rt: Runtime, run_ids: list[str], deadline: float
) -> dict[str, list[dict[str, Any]]]:
    """Wait (until ``deadline``, monotonic seconds) for every run's GitHub writes to be final
    (sent, failed for good, or superseded); returns :func:`outbox_states`."""
    while True:
        states = await asyncio.to_thread(outbox_states, rt, run_ids)
        if all(_all_sent(states[r]) for r in run_ids) or time.monotonic() > deadline:
            return states
        await asyncio.sleep(0.2)


def strip_marker(body: str) -> str:
    """A comment's text without gaffer's hidden marker."""
    return MARKER_RE.sub("", body).strip()


def read_back(demo: DemoGitHub, run: dict[str, Any]) -> dict[str, Any]:
    """What ``run`` (a run dict of the scenario: ``id``, ``branch``, ``work_item``) left on
    the stand-in: ``ack`` (``number``, ``url``, ``text``: the final text), ``pull_request``
    (``number``, ``title``, ``url``, ``head``, ``base``, ``body``) opened from its branch,
    ``review`` (``pull_number``, ``event``, ``inline_comments``, ``commit_id``, ``url``) it
    submitted; each None when absent."""
    repo, web = demo.repo, f"{demo.hub.web_url}/{REPOSITORY}"
    out: dict[str, Any] = {"ack": None, "pull_request": None, "review": None}
    with demo.hub.state.lock:
        for c in repo.comments.values():
            found = MARKER_RE.search(c.body)
            if found and found.group(1) == run["id"] and found.group(2) is None:
                out["ack"] = {
                    "number": c.issue_number,
                    "url": f"{web}/issues/{c.issue_number}#issuecomment-{c.id}",
                    "text": strip_marker(c.body),
                }
        branch = run.get("branch")
        for p in repo.pulls.values():
            if branch and p.head_ref == branch:
                issue = repo.issues[p.number]
                out["pull_request"] = {
                    "number": p.number,
                    "title": issue.title,
                    "url": f"{web}/pull/{p.number}",
                    "head": p.head_ref,
                    "base": p.base_ref,
                    "body": issue.body,
                }
        number = int(run["work_item"]) if str(run.get("work_item", "")).isdigit() else None
        for v in repo.reviews.values():
            if v.pull_number == number and has_marker(v.body, run["id"], REVIEW_MARKER_KIND):
                inline = [c for c in repo.review_comments.values() if c.review_id == v.id]
                out["review"] = {
                    "pull_number": v.pull_number,
                    "event": v.state,
                    "inline_comments": len(inline),
                    "commit_id": v.commit_id,
                    "url": f"{web}/pull/{v.pull_number}#pullrequestreview-{v.id}",
                }
    return out
