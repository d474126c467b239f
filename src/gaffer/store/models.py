"""SQLAlchemy 2 models: the records gaffer keeps (the coordination state lives in Redis).

Every table works on SQLite and PostgreSQL; the schema itself is owned by the Alembic migrations
in ``gaffer/store/migrations`` (the models must match them; ``tests/test_store.py`` checks that
the migrated schema and the models agree).
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh 32-character hex identifier (uuid4), used for every primary key we mint."""
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    SQLite has no timezone type and returns naive datetimes; this decorator makes both
    databases hand back the same aware value.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


class RunStatus(enum.StrEnum):
    """The states of a run (DESIGN.md). Terminal states never change again."""

    QUEUED = "QUEUED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    CANCELED = "CANCELED"
    SYSTEM_FAILURE = "SYSTEM_FAILURE"

    @property
    def terminal(self) -> bool:
        """True for the states a run ends in."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset(
    {
        RunStatus.SUCCEEDED,
        RunStatus.FAILED,
        RunStatus.TIMED_OUT,
        RunStatus.CANCELED,
        RunStatus.SYSTEM_FAILURE,
    }
)


class Base(DeclarativeBase):
    """Declarative base of every gaffer table."""


class Organization(Base):
    """A tenant: owns projects. Created implicitly (``default``) when none is named."""

    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    projects: Mapped[list[Project]] = relationship(back_populates="organization")


class Project(Base):
    """One repository that gaffer works on, with its webhook secret and bot identity.

    ``webhook_secret_encrypted`` is a Fernet token made with the master key
    (:mod:`gaffer.store.crypto`); the plain secret is never stored.
    """

    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    repository: Mapped[str] = mapped_column(String(300), index=True)
    clone_url: Mapped[str] = mapped_column(Text)
    base_branch: Mapped[str] = mapped_column(String(200), default="main")
    webhook_secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    bot_login: Mapped[str] = mapped_column(String(200))
    trigger_label: Mapped[str] = mapped_column(String(200), default="gaffer")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The project's own worker image (issue 13; :mod:`gaffer.images.settings`): the reference
    # the operator set, ``pending|verified|failed``, the pinned ``repo@sha256:...`` once
    # verified, the reason once failed; all None: the global default. Registry credentials
    # for the pull are a Fernet token of ``{"username", "password"}`` JSON, write-only.
    worker_image: Mapped[str | None] = mapped_column(String(512), default=None)
    worker_image_status: Mapped[str | None] = mapped_column(String(16), default=None)
    worker_image_digest: Mapped[str | None] = mapped_column(String(600), default=None)
    worker_image_error: Mapped[str | None] = mapped_column(Text, default=None)
    worker_image_registry_auth_encrypted: Mapped[bytes | None] = mapped_column(
        LargeBinary, default=None
    )

    organization: Mapped[Organization] = relationship(back_populates="projects")
    agents: Mapped[list[AgentConfig]] = relationship(
        back_populates="project", cascade="all, delete-orphan", order_by="AgentConfig.agent_type"
    )
    triggers: Mapped[list[TriggerConfig]] = relationship(
        back_populates="project", cascade="all, delete-orphan"
    )


class AgentConfig(Base):
    """Whether an agent type is enabled on a project, which engine drives it, and the
    project's overrides of the agent's shipped definition.

    ``engine_settings`` is engine-specific JSON; for the ``command`` engine it is
    ``{"command": "<shell command>"}``. ``overrides`` holds the overridden definition fields
    (model, base_url, credential, prompts, limits: :class:`gaffer.agents.effective.AgentOverrides`).
    """

    __tablename__ = "agent_configs"
    __table_args__ = (UniqueConstraint("project_id", "agent_type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    agent_type: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    engine: Mapped[str] = mapped_column(String(64))
    engine_settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    overrides: Mapped[dict[str, Any]] = mapped_column(
        JSONType, default=dict, server_default=text("'{}'")
    )

    project: Mapped[Project] = relationship(back_populates="agents")


class ProjectCredential(Base):
    """A named secret of a project (an engine's API key, say), encrypted with the master key.

    Only ``name`` is ever shown; the value is written from stdin and read by the dispatcher
    when a run needs it.
    """

    __tablename__ = "project_credentials"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    value_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class TriggerConfig(Base):
    """Whether an event (``"issues.labeled"``, ``"check_suite.completed"``...) may start an agent.

    A trigger is enabled only if its row exists with ``enabled`` set and the agent is enabled.
    """

    __tablename__ = "trigger_configs"
    __table_args__ = (UniqueConstraint("project_id", "agent_type", "event"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    agent_type: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(128))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    project: Mapped[Project] = relationship(back_populates="triggers")


class Run(Base):
    """One agent run: what started it, where it stands, and what it produced.

    ``job_data`` is the complete job (see :class:`gaffer.queue.jobs.JobData`): as enqueued, so
    a QUEUED run whose queue job was lost can be re-enqueued from its row alone; once the run
    has started on GitHub, as started (the context fetched then, PR facts filled in; never a
    token: :func:`gaffer.dispatch.github_start.start_on_github`), so a run taken up again works
    from what its first start saw.
    ``worker_ref`` names the worker while it lives (a process group id for ``local``).
    ``batch_id``/``batch_index`` say which submission made the run and where in it (a webhook
    delivery's requests form one batch); ``tags`` is a JSON list (``[]`` when none) and
    ``run_metadata`` a JSON object, both set while a run waits in the burst buffer.
    ``accepted_at`` is when the request was accepted (before the row existed, for a run that
    waited in the burst buffer); ``created_at`` is when the row was written.
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_status", "status"),
        Index("ix_runs_project_created", "project_id", "created_at"),
        Index("ix_runs_batch", "batch_id", "batch_index"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    agent_type: Mapped[str] = mapped_column(String(64))
    work_item: Mapped[str] = mapped_column(String(200))
    pr_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    head_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    trigger: Mapped[str] = mapped_column(String(128))
    delivery_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[RunStatus] = mapped_column(String(32), default=RunStatus.QUEUED)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    branch: Mapped[str | None] = mapped_column(String(300), nullable=True)
    commit_sha: Mapped[str | None] = mapped_column(String(64), nullable=True)
    summary: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    job_data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    batch_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    batch_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=text("'[]'"))
    run_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    log_cursor: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """Where the recorded output of the run's worker ends (``<second>:<lines>``, see
    :class:`gaffer.backends.base.LogCursor`); written with each log batch."""
    engine_usage: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    """What the engine's CLI itself reported, summed over the run's turns: ``turns``,
    ``input_tokens``, ``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``,
    ``cost_usd`` (USD), ``invocations`` (engine runs, continuations included)."""
    outputs: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    """The agent's validated structured outputs by kind (``review``, ``reply``, ``plan``)."""

    project: Mapped[Project] = relationship()


class RunLog(Base):
    """One line of a run's log. ``id`` orders lines and lets ``logs --follow`` resume."""

    __tablename__ = "run_logs"
    __table_args__ = (Index("ix_run_logs_run_id_id", "run_id", "id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    ts: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    stream: Mapped[str] = mapped_column(String(16))
    """``worker`` (the worker's own events), ``engine`` (engine output), ``system`` (dispatch)."""
    message: Mapped[str] = mapped_column(Text)


class WebhookDelivery(Base):
    """Every webhook request received, with the answer given and why.

    ``decision`` is one of ``queued``, ``ignored``, ``duplicate``, ``pong``, ``rejected``,
    ``error``. ``run_ids`` lists the runs the delivery created (JSON list of ids).
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_delivery", "provider", "delivery_id"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    provider: Mapped[str] = mapped_column(String(32))
    event: Mapped[str | None] = mapped_column(String(128), nullable=True)
    action: Mapped[str | None] = mapped_column(String(128), nullable=True)
    delivery_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    project_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    status_code: Mapped[int] = mapped_column(Integer)
    decision: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    run_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OutboxStatus(enum.StrEnum):
    """The states of an outbox entry. ``sent``, ``failed`` and ``superseded`` are final."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPERSEDED = "superseded"


class OutboxEntry(Base):
    """One write to GitHub that a run's state calls for (an ack, a PR, a review, a check run
    ...), written in the same transaction as that state and sent later by the notifier.

    ``kind`` names the sender (:mod:`gaffer.providers.github_api.outbox_kinds`), ``payload``
    its arguments (JSON). ``coalesce_key``: a newer pending entry of the same run and key
    supersedes older pending ones (the ack comment's successive texts). ``lease_until``: while
    ``sending``, when another notifier may take the entry over (its sender crashed).
    ``result`` is what GitHub created (``{"id", "url", ...}``); ``last_error`` GitHub's answer
    to the last failed attempt.

    An entry with no ``run_id`` follows from no run (a trigger ignored over an attempt cap or
    the monthly budget, :mod:`gaffer.runs.notices`): ``number`` is the issue/PR it is about and
    ``dedup_key`` makes it once per project (a second entry with the same key is not written).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_run", "run_id", "id"),
        Index("ux_outbox_dedup", "project_id", "dedup_key", unique=True),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str | None] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), nullable=True
    )
    project_id: Mapped[str] = mapped_column(String(32))
    number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """The issue/PR number of an entry that follows from no run (None for a run's entries)."""
    dedup_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    """Once-per-project key of an entry that follows from no run (None for a run's entries)."""
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    coalesce_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[OutboxStatus] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class GitHubCredential(Base):
    """A project's GitHub credentials: a GitHub App (``app_id``, the private key PEM in
    ``secret_encrypted``, ``installation_id`` when known) or a token (``secret_encrypted``,
    ``login`` of the account it acts as). The secret is a Fernet token made with the master
    key; the plain value is never stored."""

    __tablename__ = "github_credentials"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # "app" | "token"
    app_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    installation_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    login: Mapped[str | None] = mapped_column(String(200), nullable=True)
    secret_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    api_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The API root for GitHub Enterprise Server (None: https://api.github.com)."""
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SnapshotSettings(Base):
    """A project's set-up and snapshot settings (README "Warm starts"); no row: the defaults.

    ``setup_command``: a shell command run as the project's set-up instead of the repository's
    ``.gaffer/setup.sh`` (None: the script, when the repository has one); ``setup_failure``:
    ``fail`` (a failing set-up fails the run) or ``warn`` (logged, the run goes on);
    ``setup_timeout_s``: its time limit (None: ``GAFFER_SETUP_TIMEOUT_S``); ``work_item`` /
    ``project``: the two kinds of snapshot on or off; ``ttl_s``: how long its snapshots are
    kept (None: ``GAFFER_SNAPSHOT_TTL_S``, 24 h).
    """

    __tablename__ = "snapshot_settings"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    setup_command: Mapped[str | None] = mapped_column(Text, nullable=True)
    setup_failure: Mapped[str] = mapped_column(String(8), default="fail")
    setup_timeout_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    work_item: Mapped[bool] = mapped_column(Boolean, default=False)
    project: Mapped[bool] = mapped_column(Boolean, default=False)
    ttl_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Snapshot(Base):
    """A snapshot image in the registry (:mod:`gaffer.snapshots.registry`).

    ``kind`` is ``work-item`` (a successful run's container, for the next run on that work
    item) or ``project`` (the base branch cloned and set up; ``work_item`` is ``""``);
    ``image`` the image's name (``repository:tag``), ``image_id`` its id; ``key`` the project
    snapshot key (worker image id + hash of the set-up and lock files; None for work-item
    snapshots); ``files_hash`` the hash part of it; ``size_bytes`` the engine's image size;
    ``status`` ``ready`` or ``building`` (a project snapshot being built: its row is the claim
    that keeps a second dispatcher from building it too).
    """

    __tablename__ = "snapshots"
    __table_args__ = (UniqueConstraint("instance", "project_id", "kind", "work_item"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    instance: Mapped[str] = mapped_column(String(100))
    project_id: Mapped[str] = mapped_column(String(32), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    work_item: Mapped[str] = mapped_column(String(200), default="")
    image: Mapped[str] = mapped_column(String(300))
    image_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    base_image_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    files_hash: Mapped[str | None] = mapped_column(String(100), nullable=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="ready")
    source_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


# The account tables share this metadata (one schema for the migrations and their check).
from gaffer.accounts import models as _account_models  # noqa: E402, F401


class GatewayCall(Base):
    """One model call an engine made through the gateway (:mod:`gaffer.gateway.usage`).

    ``api`` is the wire API (``anthropic``, ``responses``, ``chat``); ``provider`` the
    upstream's (``anthropic``, ``openai``, or what the project configured); ``model`` the model
    the upstream answered with (else the one asked). The four token counts are the upstream's
    figures (``input_tokens`` without cached tokens: see :class:`gaffer.gateway.protocols.Usage`).
    ``cost_nano_usd`` is in 1e-9 USD, None when the price table does not know the model.
    ``status_code`` is the upstream's HTTP status, or the gateway's own when it answered
    itself; ``outcome`` is ``ok``, ``upstream_error``, ``cut`` (the upstream stream broke),
    ``client_disconnected``, ``upstream_unreachable``. ``ttfb_ms``: from the request to the
    upstream's first byte, None when none came.
    """

    __tablename__ = "gateway_calls"
    __table_args__ = (
        Index("ix_gateway_calls_run", "run_id"),
        Index("ix_gateway_calls_project_started", "project_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(32))
    agent_type: Mapped[str] = mapped_column(String(64))
    api: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str] = mapped_column(String(32))
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost_nano_usd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    duration_ms: Mapped[int] = mapped_column(Integer)
    ttfb_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    response_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class GatewayUpstream(Base):
    """Where a project's model calls of one wire API go: ``base_url`` and the provider key,
    encrypted with the master key (Fernet, like the webhook secret). Read by
    :class:`gaffer.gateway.upstreams.StoredUpstreams` until the credentials store replaces it."""

    __tablename__ = "gateway_upstreams"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    api: Mapped[str] = mapped_column(String(16), primary_key=True)
    provider: Mapped[str] = mapped_column(String(64))
    base_url: Mapped[str] = mapped_column(Text)
    api_key_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
