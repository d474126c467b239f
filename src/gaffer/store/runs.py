"""Queries over runs and run logs.

State changes go through :func:`transition`, a compare-and-set ``UPDATE ... WHERE status IN``:
two processes racing to move the same run (a cancel and a dispatch, say) cannot both win, and
nobody needs a lock to find out who did.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from gaffer.errors import UserError
from gaffer.store.models import Project, Run, RunLog, RunStatus, utcnow


class RunNotFoundError(UserError, LookupError):
    """No run has that id (or id prefix)."""


class AmbiguousRunIdError(UserError, LookupError):
    """An id prefix matches more than one run."""


def get_run(session: Session, run_id: str) -> Run:
    """The run with this id, or the only run whose id starts with ``run_id`` (at least 4 chars).

    Raises :class:`RunNotFoundError` or :class:`AmbiguousRunIdError`.
    """
    run = session.get(Run, run_id)
    if run is not None:
        return run
    if len(run_id) < 4:
        raise RunNotFoundError(f"no run {run_id!r} (an id prefix needs at least 4 characters)")
    # autoescape: "_" and "%" in the prefix are themselves, not LIKE wildcards.
    matches = list(
        session.scalars(select(Run).where(Run.id.startswith(run_id, autoescape=True)).limit(2))
    )
    if not matches:
        raise RunNotFoundError(f"no run {run_id!r}")
    if len(matches) > 1:
        raise AmbiguousRunIdError(f"run id prefix {run_id!r} matches several runs")
    return matches[0]


def list_runs(
    session: Session,
    *,
    project: str | None = None,
    status: Sequence[str] | None = None,
    limit: int = 50,
) -> list[Run]:
    """Newest runs first; ``project`` is a project name or id."""
    query = select(Run).join(Project).order_by(Run.created_at.desc()).limit(limit)
    if project:
        query = query.where((Project.name == project) | (Project.id == project))
    if status:
        query = query.where(Run.status.in_(list(status)))
    return list(session.scalars(query))


def runs_with_status(session: Session, statuses: Iterable[RunStatus]) -> list[Run]:
    """Every run in one of ``statuses``, oldest first."""
    return list(
        session.scalars(select(Run).where(Run.status.in_(list(statuses))).order_by(Run.created_at))
    )


def transition(
    session: Session,
    run_id: str,
    *,
    from_statuses: Iterable[RunStatus],
    to_status: RunStatus,
    **fields: Any,
) -> bool:
    """Move a run to ``to_status`` only if it is in one of ``from_statuses``.

    ``fields`` are other columns to set in the same statement. ``finished_at`` is filled in
    when ``to_status`` is terminal. Returns True when this call moved the run.
    """
    values: dict[str, Any] = {"status": to_status, **fields}
    if to_status.terminal:
        values.setdefault("finished_at", utcnow())
    result = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status.in_([s.value for s in from_statuses]))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_fields(session: Session, run_id: str, **fields: Any) -> None:
    """Set columns of a run regardless of its status (worker results, worker_ref)."""
    session.execute(
        update(Run)
        .where(Run.id == run_id)
        .values(**fields)
        .execution_options(synchronize_session=False)
    )


def append_logs(session: Session, run_id: str, lines: Sequence[tuple[str, str, datetime]]) -> None:
    """Append ``(stream, message, ts)`` lines to a run's log, in order."""
    if not lines:
        return
    session.execute(
        insert(RunLog),
        [{"run_id": run_id, "stream": s, "message": m, "ts": ts} for s, m, ts in lines],
    )


def read_logs(
    session: Session, run_id: str, *, after_id: int = 0, limit: int = 1000
) -> list[RunLog]:
    """Log lines of a run with ``id > after_id``, in order, at most ``limit``."""
    return list(
        session.scalars(
            select(RunLog)
            .where(RunLog.run_id == run_id, RunLog.id > after_id)
            .order_by(RunLog.id)
            .limit(limit)
        )
    )


def count_runs(session: Session, **filters: Any) -> int:
    """How many runs match the equality ``filters`` (column name → value)."""
    query = select(func.count()).select_from(Run)
    for column, value in filters.items():
        query = query.where(getattr(Run, column) == value)
    return int(session.scalar(query) or 0)


def last_output_time(session: Session, run_id: str) -> datetime | None:
    """When the last line of the worker's own output (any stream but ``system``) was recorded
    for a run, or None when there is none."""
    return session.scalar(
        select(RunLog.ts)
        .where(RunLog.run_id == run_id, RunLog.stream != "system")
        .order_by(RunLog.id.desc())
        .limit(1)
    )
