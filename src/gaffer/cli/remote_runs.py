"""``gaffer runs ...`` in remote mode: the same reads, starts and cancels through
``/api/v1/runs``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gaffer.cli.remote import RemoteClient
from gaffer.runs.intake import Submission
from gaffer.store.models import RunStatus

CANCEL_POLL_S = 0.2


def list_views(
    client: RemoteClient, project: str | None, statuses: list[str], limit: int
) -> list[dict[str, Any]]:
    """Up to ``limit`` runs, newest first (following cursors past the API's page size)."""
    views: list[dict[str, Any]] = []
    cursor = None
    while len(views) < limit:
        params: dict[str, Any] = {"limit": min(limit - len(views), 500)}
        if project is not None:
            params["project"] = project
        if statuses:
            params["status"] = statuses
        if cursor:
            params["cursor"] = cursor
        page = client.request("GET", "/runs", params=params)
        views += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return views


def show_view(client: RemoteClient, run_id: str) -> dict[str, Any]:
    """One run's view."""
    view: dict[str, Any] = client.get(client.path("runs", run_id))
    return view


def print_logs(
    client: RemoteClient, run_id: str, follow: bool, on_line: Callable[[dict[str, Any]], None]
) -> tuple[int, str]:
    """Pass each log line to ``on_line`` (with ``follow``, until the run ends); returns how many
    lines there were and the run's status at the end."""
    path = client.path("runs", run_id, "logs")
    count = 0
    if follow:
        status = ""
        for kind, data in client.events(path, follow="true"):
            if kind == "line":
                on_line(data)
                count += 1
            elif kind == "end":
                status = str(data["status"])
        return count, status
    after = 0
    while True:
        page = client.get(path, after=after)
        for line in page["lines"]:
            on_line(line)
            count += 1
        if not page["lines"]:
            return count, str(page["status"])
        after = page["next_after"]


def cancel(client: RemoteClient, run_id: str, wait_s: float) -> tuple[dict[str, Any], str]:
    """Cancel a run and wait up to ``wait_s`` seconds for it to stop; returns the cancel's
    answer and the status then."""
    result: dict[str, Any] = client.post(client.path("runs", run_id, "cancel"))
    status = str(result["status"])
    deadline = time.monotonic() + wait_s
    while status in RunStatus.__members__ and not RunStatus(status).terminal:
        if time.monotonic() >= deadline:
            break
        time.sleep(CANCEL_POLL_S)
        status = str(show_view(client, result["id"])["status"])
    return result, status


def start(client: RemoteClient, project: str, fields: dict[str, Any]) -> Submission:
    """Start a manual run through ``POST /runs``; the answer as a :class:`Submission`."""
    answer = client.post("/runs", {"project": project, **fields})
    return Submission(
        run_ids=list(answer["runs"]),
        skipped=[("", reason) for reason in answer["skipped"]],
        redis_down=bool(answer["redis_down"]),
        buffered=bool(answer["buffered"]),
        buffer_reason=str(answer["buffer_reason"]),
    )
