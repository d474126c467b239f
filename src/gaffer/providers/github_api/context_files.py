"""A run's context as files for the scratch directory, and the rules that stop a run
before a worker starts (a PR closed or merged meanwhile; a fork's branch for pushing
agents)."""

from __future__ import annotations

import re

from gaffer.providers.github_api.context_models import RunContext
from gaffer.providers.github_api.permissions import BranchMode

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def start_refusal(context: RunContext, branch_mode: BranchMode) -> str | None:
    """Why the run must not start (end it CANCELED with this reason), or None.

    A PR that was closed or merged while the run waited; a PR from a fork for a ``pr-head``
    agent (its head branch is not the project's to push to).
    """
    pr = context.pull_request
    if pr is None:
        return None
    if pr.ended_reason:
        return pr.ended_reason
    if branch_mode == "pr-head" and pr.from_fork:
        return (
            f"PR #{pr.number} comes from a fork: its branch {pr.head_ref!r} is not this "
            "project's to push to"
        )
    return None


def _name(text: str) -> str:
    return _UNSAFE.sub("-", text).strip("-")[:80] or "check"


def context_files(context: RunContext) -> dict[str, str]:
    """``{relative path: text}`` for the scratch directory: ``issue.md`` (title, body,
    comments), and when present ``pr.md`` (branches, SHA, files), ``pr.diff``, ``review.md``
    (the review and its inline comments, with their ids for the reply file),
    ``trigger-comment.md``, ``ci/<check>.log`` (failed checks' log tails)."""
    files: dict[str, str] = {}
    issue = context.issue
    lines = [f"# #{issue.number}: {issue.title}", "", issue.body or "(no description)", ""]
    for c in issue.comments:
        lines += [f"## comment {c.id} by @{c.author or 'unknown'}", "", c.body, ""]
    if issue.comments_truncated:
        lines.append(f"(only the first {len(issue.comments)} comments are shown)")
    files["issue.md"] = "\n".join(lines)
    pr = context.pull_request
    if pr is not None:
        head = [
            f"# PR #{pr.number}: {pr.title}",
            "",
            f"- head: `{pr.head_ref}` at `{pr.head_sha}`"
            + (" (from a fork)" if pr.from_fork else ""),
            f"- base: `{pr.base_ref}`",
            f"- state: {pr.state}" + (" (merged)" if pr.merged else ""),
            "",
            pr.body or "(no description)",
            "",
            "## Files",
            "",
        ]
        head += [f"- {f.status} `{f.filename}` (+{f.additions} -{f.deletions})" for f in pr.files]
        if pr.diff_note:
            head += ["", f"Note: {pr.diff_note}"]
        files["pr.md"] = "\n".join(head)
        files["pr.diff"] = pr.diff
    if context.review is not None:
        r = context.review
        out = [f"# Review {r.id} by @{r.author or 'unknown'}: {r.state}", "", r.body, ""]
        for rc in r.comments:
            where = f"{rc.path}:{rc.line}" if rc.line else rc.path
            side = (rc.side or "RIGHT").lower()
            out += [f"## comment_id {rc.id} on {where} ({side})", "", rc.body, ""]
        files["review.md"] = "\n".join(out)
    if context.trigger_comment is not None:
        t = context.trigger_comment
        files["trigger-comment.md"] = f"# comment {t.id} by @{t.author or 'unknown'}\n\n{t.body}\n"
    for check in context.failed_checks:
        text = check.log_tail if check.log_tail is not None else (check.summary or "")
        note = f"[{check.log_note}]\n" if check.log_note else ""
        files[f"ci/{_name(check.name)}-{check.id}.log"] = note + text
    return files
