"""What a worker gets to reach the engine's model API: the gateway and a per-run token, or
(with the gateway turned off) the provider key itself.

With the gateway (``GAFFER_GATEWAY_ENABLED``, the default) the worker gets
``GAFFER_ENGINE_BASE_URL`` (the gateway as the worker reaches it, with the path the engine's CLI
expects: ``/v1`` for the OpenAI-speaking ones) and ``GAFFER_ENGINE_API_KEY`` = a per-run token
(:class:`gaffer.gateway.tokens.RunTokens`: signed, naming the run, refused once the run has
ended). The provider key stays in the project's encrypted credentials and is read by the gateway
(:mod:`gaffer.gateway.agent_upstreams`): nothing long-lived enters the sandbox.

Without the gateway the job names the credential (``engine.credential``) and its value is read
here when the run starts and handed over as ``GAFFER_ENGINE_API_KEY``; the worker reads it once,
scrubs it from its own environment and gives it to the engine's process only. Either way the
value is never in the job, which is stored with the run.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from gaffer.backends.base import PermanentStartError
from gaffer.engines.base import ENGINE_API_KEY_ENV, ENGINE_BASE_URL_ENV
from gaffer.gateway.tokens import RunTokens
from gaffer.queue.jobs import JobData
from gaffer.settings import Settings
from gaffer.store.credentials import read_credential
from gaffer.store.crypto import SecretBox
from gaffer.store.db import Database

log = structlog.get_logger(__name__)

WIRE_PATHS = {"codex": "/v1", "opencode": "/v1", "aider": "/v1"}
"""What each engine's CLI wants after the gateway's address (Claude Code and the ``command``
engine take the bare address: Anthropic's clients append ``/v1/messages`` themselves)."""


@dataclass(frozen=True)
class GatewayAccess:
    """How this dispatcher's workers reach the gateway: ``url`` (no ``/v1``) as a worker sees
    it, and the token issuer. ``url`` is None when they cannot reach one; ``unreachable``
    then says why and what to set, and runs of engines that call a model fail at once with
    it (the ``command`` engine runs without model access)."""

    url: str | None
    tokens: RunTokens
    token_ttl_s: int
    unreachable: str | None = None

    @classmethod
    def of(
        cls, settings: Settings, listening_url: str | None, tokens: RunTokens, token_ttl_s: int
    ) -> GatewayAccess:
        """The access of a dispatcher whose process serves the gateway at ``listening_url``
        (None: it serves none)."""
        try:
            url: str | None = worker_gateway_url(settings, listening_url)
            why = None
        except PermanentStartError as exc:
            url, why = None, str(exc)
            log.warning("gateway_unreachable_for_workers", reason=why)
        return cls(url, tokens, token_ttl_s, why)


def worker_gateway_url(settings: Settings, listening_url: str | None) -> str:
    """The gateway's URL as this dispatcher's workers reach it: ``GAFFER_GATEWAY_URL`` when
    set, else the gateway of this process (``listening_url``), which a container reaches only
    on the host's network. Raises :class:`PermanentStartError` saying what to set when the
    workers cannot reach it (no gateway here; a container network of ``none`` or another one
    than ``host`` for a gateway on loopback)."""
    if settings.backend == "docker" and settings.worker_network == "none":
        raise PermanentStartError(
            "the engines' model calls go through gaffer's gateway, and worker containers on"
            " network 'none' cannot reach it: use another GAFFER_WORKER_NETWORK, or turn the"
            " gateway off (GAFFER_GATEWAY_ENABLED=false: the provider key then enters workers)"
        )
    if settings.gateway_url:
        return settings.gateway_url.rstrip("/")
    if listening_url is None:
        raise PermanentStartError(
            "no model gateway is reachable: run the gateway role in this process"
            " (gaffer up --role gateway) or set GAFFER_GATEWAY_URL to where workers reach one"
        )
    if settings.backend == "docker" and settings.worker_network != "host":
        raise PermanentStartError(
            f"worker containers on network {settings.worker_network!r} cannot reach the gateway"
            f" at {listening_url} (their loopback is their own): set GAFFER_GATEWAY_HOST=0.0.0.0"
            " and GAFFER_GATEWAY_URL to the host as containers see it"
            " (http://host.containers.internal:PORT), or GAFFER_WORKER_NETWORK=host"
        )
    return listening_url


def engine_secret_env(
    db: Database, box: SecretBox | None, job: JobData, gateway: GatewayAccess | None
) -> dict[str, str]:
    """The worker env entries for the engine's model access (see the module docstring).

    With ``gateway``: the gateway's URL for the engine and a per-run token (raises
    :class:`PermanentStartError` when workers cannot reach it and the engine calls a
    model). Without: the
    provider key when the job names a credential the project has, else ``{}`` (logged as
    ``engine_credential_missing``: a model server that needs no key still works). Raises
    database errors."""
    if gateway is not None:
        if gateway.url is None:
            if job.engine.name == "command":
                return {}
            raise PermanentStartError(gateway.unreachable or "no model gateway is reachable")
        token = gateway.tokens.issue(job.run_id, ttl_s=gateway.token_ttl_s)
        path = WIRE_PATHS.get(job.engine.name, "")
        return {ENGINE_API_KEY_ENV: token, ENGINE_BASE_URL_ENV: gateway.url + path}
    name = job.engine.credential
    if not name or box is None:
        return {}
    with db.session() as session:
        value = read_credential(session, box, job.project_id, name)
    if value is None:
        log.warning(
            "engine_credential_missing", run_id=job.run_id, project=job.project_name, name=name
        )
        return {}
    return {ENGINE_API_KEY_ENV: value}
