"""The gateway's settings (``GAFFER_GATEWAY_*``), read once at start-up like :class:`Settings`.

=====================================  ==========================================================
``GAFFER_GATEWAY_TOKEN_TTL_S``         lifetime of a per-run token in seconds (default 86400);
                                       a token is refused earlier, as soon as its run has ended.
``GAFFER_GATEWAY_MAX_RUN_COST_USD``    most a run may spend (USD; default 5.0; 0: no limit).
``GAFFER_GATEWAY_MAX_RUN_TOKENS``      most tokens (input + output + cache) a run may use
                                       (default 0: no limit).
``GAFFER_GATEWAY_MAX_RUN_CALLS``       most model calls a run may make (default 0: no limit).
``GAFFER_GATEWAY_PROJECT_MONTHLY_USD`` a project's budget per calendar month, UTC (USD;
                                       default 0: no limit).
``GAFFER_GATEWAY_PRICES_FILE``         a YAML file of extra model prices, same shape as
                                       ``gaffer/gateway/prices.yaml``; its models win.
``GAFFER_GATEWAY_RESERVE_OUTPUT_TOKENS`` output tokens a call's reservation assumes at most
                                       (default 4096): the estimate is
                                       ``min(max_tokens asked, this)``.
``GAFFER_GATEWAY_RESERVATION_TTL_S``   how long a reservation holds budget when its gateway dies
                                       before settling it (default 900 s).
``GAFFER_GATEWAY_MAX_REQUEST_BYTES``  largest request body taken from an engine (default 64 MiB;
                                       larger: 413 in the provider's shape).
``GAFFER_GATEWAY_CONNECT_TIMEOUT_S``   connect timeout to the upstream (default 10 s).
``GAFFER_GATEWAY_READ_TIMEOUT_S``      longest silence between two bytes of the upstream's
                                       answer (default 600 s).
=====================================  ==========================================================
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    """Settings of the model gateway (see the module docstring for each variable).

    Separate from :class:`gaffer.settings.Settings` so the gateway can be merged without
    touching the shared settings; the lead may fold these fields in with the same names.
    """

    model_config = SettingsConfigDict(env_prefix="GAFFER_GATEWAY_", extra="ignore", frozen=True)

    token_ttl_s: int = Field(default=24 * 3600, ge=1)
    max_run_cost_usd: float = Field(default=5.0, ge=0)
    max_run_tokens: int = Field(default=0, ge=0)
    max_run_calls: int = Field(default=0, ge=0)
    project_monthly_usd: float = Field(default=0.0, ge=0)
    prices_file: Path | None = None
    reserve_output_tokens: int = Field(default=4096, ge=0)
    reservation_ttl_s: int = Field(default=900, ge=1)
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=600.0, gt=0)
