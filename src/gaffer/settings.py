"""All of gaffer's configuration, read once at start-up.

Every process (ingest, dispatch, CLI, worker) builds one :class:`Settings` when it starts and
passes it down explicitly. Nothing re-reads the environment later: the worker scrubs
infrastructure settings from its own env before it starts an engine, and whatever it still needs
(the Redis URL of a job-data offload, for example) must come from the object read at start-up.

Environment variables (all optional):

=======================  =======================================================================
``GAFFER_HOME``          data directory (default ``./.gaffer``): SQLite file, embedded Redis
                         socket and append-only file, master key, workspaces.
``DATABASE_URL``         SQLAlchemy URL. Default: ``sqlite:///$GAFFER_HOME/gaffer.db``.
                         ``postgresql://`` URLs are driven by psycopg 3.
``REDIS_URL``            Default: none, meaning gaffer starts a private ``redis-server`` on a unix
                         socket in the data dir and stops it on exit.
``GAFFER_BACKEND``       worker backend: ``local`` (default, a process group per run) or
                         ``docker`` (a container per run, through the Docker Engine API).
``GAFFER_MAX_WORKERS``   workers running at once in one dispatch process (default 3).
``GAFFER_RUN_TIMEOUT_S`` wall-clock limit of one run in seconds (default 1800).
``GAFFER_STALL_TIMEOUT_S`` no engine output for this long ends the run TIMED_OUT (default 300).
``GAFFER_ENGINES_DIR``   where the agent CLIs are installed (default ``/opt/gaffer-engines``).
``GAFFER_MASTER_KEY``    Fernet key that encrypts stored secrets. With the embedded default
                         (SQLite) it is generated on first start into ``$GAFFER_HOME/master.key``
                         (mode 0600). With a shared database it must be given, because every
                         process must decrypt with the same key.
``GAFFER_API_TOKEN``     bearer token of the JSON API; without it ``/api`` is not served.
``GAFFER_BUFFER_*``      the burst buffer (off by default): see the ``buffer_*`` fields below and
                         README "Burst buffer".
``DOCKER_HOST``          the container engine's API (``docker`` backend), e.g.
                         ``unix:///run/podman/podman.sock``. Default: the Docker SDK's
                         ``unix:///var/run/docker.sock``.
``GAFFER_WORKER_IMAGE``  the worker image of the ``docker`` backend (default
                         ``localhost/gaffer-worker:latest``, built by ``scripts/build-images``);
                         checked against the image reference grammar when read.
``GAFFER_WORKER_*``      container limits: ``MEMORY_MB`` (4096; swap is set equal, so none),
                         ``CPUS`` (2.0), ``PIDS_LIMIT`` (4096), ``NETWORK`` (``bridge``).
``GAFFER_GATEWAY_HOST``, ``_PORT``, ``_URL``: where the model gateway listens (127.0.0.1, any port)
                         and how workers reach it (see the ``gateway_*`` fields).
``GAFFER_INSTANCE``      names this installation on a shared container engine (``default``):
                         containers are labelled with it and the orphan sweep only touches its own.
=======================  =======================================================================
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gaffer.images.reference import validate_image_reference

BackendName = Literal["local", "docker"]
_LABEL_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class Settings(BaseSettings):
    """gaffer's configuration (see the module docstring for each variable).

    Build it once per process with ``Settings()`` (reads the environment) or with keyword
    arguments in tests and the demo; then pass it down. Paths are made absolute at build time so
    that a later ``chdir`` cannot move the data directory.
    """

    model_config = SettingsConfigDict(env_prefix="GAFFER_", extra="ignore", frozen=True)

    home: Path = Field(default=Path(".gaffer"))
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "database_url")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url")
    )
    backend: BackendName = "local"
    max_workers: int = Field(default=3, ge=1, le=1024)
    run_timeout_s: float = Field(default=1800.0, gt=0)
    master_key: str | None = None

    # Ingest.
    webhook_max_body_bytes: int = Field(default=25 * 1024 * 1024, ge=1)
    """GitHub caps webhook payloads at 25 MB; anything larger is refused with 413."""
    delivery_claim_ttl_s: int = Field(default=7 * 24 * 3600, ge=1)
    """How long a delivery id stays claimed; GitHub allows redelivery of the past 3 days."""
    project_cache_ttl_s: float = Field(default=5.0, ge=0)
    bench_endpoints: bool = False
    """Mount ``POST /bench/bare`` (reads the body, nothing else) for the ingest benchmark."""

    # Dispatch.
    queue_name: str = "gaffer-runs"
    cancel_grace_s: float = Field(default=15.0, ge=0)
    """Seconds between SIGTERM and SIGKILL when a run is stopped (timeout, cancel, shutdown)."""
    repair_interval_s: float = Field(default=60.0, gt=0)
    """Period of the sweep that re-adds the job of a QUEUED run whose job is missing."""
    keep_workspaces: bool = False
    job_lock_ms: int = Field(default=30_000, ge=1000)
    """BullMQ job lock: a dispatcher that dies stops renewing it; after it lapses the job is
    stalled and comes back to another dispatcher."""
    stalled_interval_ms: int = Field(default=30_000, ge=500)
    """How often a dispatcher looks for stalled jobs (BullMQ ``stalledInterval``)."""
    orphan_sweep_interval_s: float = Field(default=300.0, gt=0)
    """Period of the sweep that removes worker containers no live run owns (also at start)."""
    stall_timeout_s: float = Field(default=300.0, gt=0)
    """A running engine that prints nothing for this many seconds is stopped and its run ends
    TIMED_OUT ("stalled: ..."), whatever is left of the wall-clock timeout."""
    ack_activity_interval_s: float = Field(default=180.0, gt=0)
    """While a run on GitHub runs, its ack comment is updated with the engine's latest activity
    at most this often (s), and only when that activity changed (issue 10: "every few
    minutes")."""
    engines_dir: Path = Field(default=Path("/opt/gaffer-engines"))
    """Where ``scripts/install-engines`` puts the agent CLIs; ``<engines_dir>/bin`` comes first
    on the ``local`` backend's worker ``PATH`` (the worker image has its own copy)."""

    # Container workers (the ``docker`` backend).
    docker_host: str | None = Field(
        default=None, validation_alias=AliasChoices("DOCKER_HOST", "docker_host")
    )
    worker_image: str = "localhost/gaffer-worker:latest"
    worker_memory_mb: int = Field(default=4096, ge=16)
    """Memory limit of a worker container in MiB; swap is limited to the same figure."""
    worker_cpus: float = Field(default=2.0, gt=0, le=1024)
    """CPU quota of a worker container, in CPUs (``NanoCpus`` / 1e9)."""
    worker_pids_limit: int = Field(default=4096, ge=16)
    """Most processes and threads at once in a worker container (a fork bomb stops there)."""
    worker_network: str = Field(default="bridge", min_length=1, pattern=r"^\S+$")
    """Network mode of worker containers: ``bridge``, ``none``, ``host`` or a network's name."""
    worker_engine_user: str = Field(default="1000:1000", pattern=r"^(\d+(:\d+)?)?$")
    """``uid[:gid]`` the engine runs as inside a worker container (the worker stays root to read
    its job and push); empty runs the engine as the container's root user."""
    instance: str = "default"
    """This installation's name on a shared container engine (the ``gaffer.instance`` label)."""

    # Coordination (issue 3): job-data offload, dispatch claims, run leases.
    job_data_offload: bool = True
    """Offload jobs over ``job_data_inline_max_bytes`` to Redis. Only tests turn it off, to show
    the kernel's "argument list too long" that it prevents."""
    job_data_inline_max_bytes: int = Field(default=96 * 1024, ge=1)
    job_data_ttl_s: int = Field(default=3600, ge=1)
    worker_redis_url: str | None = None
    """The Redis URL workers read offloaded jobs from, when it differs from what the backend
    derives from ``REDIS_URL`` (workers on other hosts, say)."""
    worker_redis_access: Literal["scoped", "shared"] = "scoped"
    """What a worker reading an offloaded job connects as: ``scoped``, a per-job Redis user
    that may only ``GETDEL`` that job's key (needs Redis 6+ and the ``+acl`` right); ``shared``,
    gaffer's own Redis credentials (see :mod:`gaffer.coordination.job_readers`)."""
    review_claim_ttl_s: int = Field(default=300, ge=1)
    lease_ms: int = Field(default=60_000, ge=500)
    """Length of a run's work-item lock and slot leases; refreshed every third of it."""
    max_runs_per_project_agent: int = Field(default=2, ge=0)
    """Runs of one agent type at once in one project, across all dispatchers (0: no cap)."""
    global_max_workers: int = Field(default=32, ge=0)
    """Workers at once across every dispatch process sharing this Redis (0: no cap)."""
    slot_wait_ms: int = Field(default=1000, ge=10)
    """How long a job that found its work item busy or a cap full waits before it looks again."""

    # The model gateway (gaffer.gateway; the gateway's own limits are GAFFER_GATEWAY_*).
    gateway_enabled: bool = True
    """Every engine's model calls go through the gateway: the engine gets the gateway's URL and
    a per-run token, never the provider key. Off: the worker gets the provider key (weaker)."""
    gateway_host: str = "127.0.0.1"
    """Address the gateway role listens on (``0.0.0.0`` for containers on a bridge network)."""
    gateway_port: int = Field(default=0, ge=0, le=65535)
    """Port the gateway role listens on (0, the default: any free port, which this process's
    own dispatcher knows; set one when workers reach the gateway through ``gateway_url``)."""
    gateway_url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    """The gateway's base URL as workers reach it (no ``/v1``), when it is not this
    process's own gateway on loopback: another host, or the host as containers see it
    (``http://host.containers.internal:8081`` with ``GAFFER_GATEWAY_PORT=8081``)."""

    # API.
    api_token: str | None = None
    """Bearer token of the JSON API (``/api/...``); the API is not mounted without one."""
    metrics_enabled: bool = True
    """Serve ``GET /metrics`` (Prometheus text format) on the ingest port."""

    # Burst buffer (gaffer.buffer; README "Burst buffer").
    buffer_enabled: bool = False
    """The global switch: with it off every trigger goes straight to the run engine."""
    buffer_organizations: str = ""
    """Enrolled organization ids, comma-separated; ``*`` enrols every organization."""
    buffer_shadow: bool = False
    """Shadow mode: evaluate the gate and log ``buffer_gate_would_buffer``, never buffer."""
    buffer_threshold: int = Field(default=100, ge=1)
    """Triggers of one project per window above which the project is held."""
    buffer_window_ms: int = Field(default=200, ge=1)
    """Length of the gate's fixed counting window (ms)."""
    buffer_hold_ms: int = Field(default=500, ge=1)
    """How long a tripped project stays held (ms), renewed by every further overage."""
    buffer_drain_budget: int = Field(default=50, ge=1, le=10_000)
    """Entries the drainer takes from one project per turn (one transaction)."""
    buffer_drain_concurrency: int = Field(default=4, ge=1, le=256)
    """Batches one drainer process replays at once: its cap on concurrent database writes."""
    ci_max_attempts: int = Field(default=3, ge=1)
    """``respond-to-ci`` runs per PR and head branch; past it a failed check starts none."""
    replies_per_day: int = Field(default=10, ge=1)
    """``respond-to-review`` / ``respond-to-pr-comment`` runs per PR in 24 h."""
    buffer_max_attempts: int = Field(default=5, ge=1)
    """Replays of an entry (retryable errors, lost leases) before it becomes SYSTEM_FAILURE."""
    buffer_lease_ms: int = Field(default=60_000, ge=100)
    """An entry popped and not acknowledged within this time (ms) is put back by a sweeper."""
    buffer_ack_grace_ms: int = Field(default=10_000, ge=0)
    """How long an acknowledged entry lingers (ms), so reads and cancels find where it went."""
    buffer_poll_ms: int = Field(default=100, ge=1)
    """Drainer sleep when the buffer is empty (ms)."""
    buffer_backoff_max_ms: int = Field(default=5_000, ge=1)
    """Cap of the drainer's exponential backoff after errors (ms; it starts at the poll)."""
    buffer_tag_cap: int = Field(default=10, ge=0)
    """Most tags a buffered run may carry."""
    buffer_stale_after_ms: int = Field(default=300_000, ge=1)
    """An entry waiting longer than this (ms) counts as stale."""
    buffer_stale_interval_ms: int = Field(default=15_000, ge=10)
    """Period of one stale-sweep pass (ms)."""
    buffer_stale_orgs_per_pass: int = Field(default=50, ge=1)
    """Organizations one stale-sweep pass covers."""
    buffer_reclaim_interval_ms: int = Field(default=5_000, ge=10)
    """Period of the in-flight reclaim sweep (ms)."""

    # Set-up scripts and snapshots (gaffer.snapshots, gaffer.worker.setup; README "Warm starts").
    setup_timeout_s: float = Field(default=900.0, gt=0)
    """Time limit of a project's set-up (``.gaffer/setup.sh`` or its set-up command), seconds."""
    snapshot_ttl_s: float = Field(default=86_400.0, gt=0)
    """How long a snapshot image is kept after it was made (s); a project's TTL overrides it."""
    snapshot_max_per_project: int = Field(default=5, ge=1)
    """Most snapshot images kept per project (the oldest are deleted first)."""
    snapshot_max_total: int = Field(default=50, ge=1)
    """Most snapshot images kept by this installation."""
    snapshot_max_bytes: int = Field(default=10 * 1024**3, ge=1)
    """Most total size of the snapshot images (bytes, as the container engine reports them)."""
    snapshot_build_timeout_s: float = Field(default=1800.0, gt=0)
    """Time limit of building a project snapshot (clone + set-up in a container of its own)."""

    # Logging.
    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"

    @field_validator("worker_image", mode="after")
    @classmethod
    def _valid_image(cls, value: str) -> str:
        return validate_image_reference(value)

    @field_validator("instance", mode="after")
    @classmethod
    def _valid_instance(cls, value: str) -> str:
        if not _LABEL_VALUE.fullmatch(value):
            raise ValueError(
                f"invalid instance name {value!r}: 1-63 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value

    @field_validator("database_url", mode="after")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        scheme = (value or "").partition("://")[0].partition("+")[0]
        if value is not None and scheme not in ("sqlite", "postgres", "postgresql"):
            raise ValueError(
                f"unsupported database {scheme or value!r}: gaffer runs on SQLite (sqlite:///path)"
                " or PostgreSQL (postgresql://user:password@host/db)"
            )
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _absolute_home(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        """The database URL with the default filled in and the driver made explicit."""
        url = self.database_url or f"sqlite:///{self.home / 'gaffer.db'}"
        if url.startswith("postgres://"):
            url = "postgresql://" + url[len("postgres://") :]
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        return url

    @property
    def uses_sqlite(self) -> bool:
        """True when the database is a SQLite file (the embedded default)."""
        return self.effective_database_url.startswith("sqlite")

    @property
    def buffer_enrolled_all(self) -> bool:
        """True when ``buffer_organizations`` is ``*``."""
        return self.buffer_organizations.strip() == "*"

    @property
    def buffer_enrolled(self) -> frozenset[str]:
        """The organization ids listed in ``buffer_organizations``."""
        return frozenset(p.strip() for p in self.buffer_organizations.split(",") if p.strip())

    @property
    def embedded_redis(self) -> bool:
        """True when no ``REDIS_URL`` is set and gaffer runs its own private ``redis-server``."""
        return not self.redis_url

    @property
    def redis_socket_path(self) -> Path:
        """Unix socket of the embedded Redis server."""
        return self.home / "redis" / "redis.sock"

    @property
    def workspaces_dir(self) -> Path:
        """Parent of each run's fresh workspace directory."""
        return self.home / "workspaces"

    @property
    def master_key_path(self) -> Path:
        """Where the embedded default keeps its generated master key (mode 0600)."""
        return self.home / "master.key"
