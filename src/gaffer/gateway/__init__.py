"""The model gateway: every model call an engine makes goes through gaffer (issue 11).

An engine is started with the gateway as its base URL and a per-run token as its API key. The
gateway checks the token and that the run still lives, reserves the call's estimated cost
against the run's and the project's budgets, forwards the call to the project's upstream with
the provider key (which never enters a worker), streams the answer back as it arrives, reads
the usage from the stream, and records a row per call.

Modules (one idea each):

=======================  ==================================================================
``tokens``               per-run tokens (HMAC-SHA256, key derived from the master key)
``protocols/``           the three wire APIs: usage from each streaming format, error shapes
``proxy``                the FastAPI app (routes, admission, forwarding)
``relay``                relaying one upstream answer as it arrives, reading usage on the way
``service``              :class:`~gaffer.gateway.service.Gateway`: the parts, settlement
``runs``                 the run a token names, and whether it has ended
``upstreams``            :class:`~gaffer.gateway.upstreams.UpstreamResolver` and two resolvers
``budgets``              reservations in Redis (``lua/*.lua``), limits, the monthly refusal
``pricing``              the price table (``prices.yaml`` + ``GAFFER_GATEWAY_PRICES_FILE``)
``usage``                usage rows, run totals, sums for ``gaffer usage``
``writer``               usage rows written in batches
``settings``             ``GAFFER_GATEWAY_*``
=======================  ==================================================================

Wiring it in (what the rest of gaffer does with it):

* **Serve it** (``gaffer up --role gateway``): ``gateway = Gateway.open(runtime, redis,
  resolver=..., on_budget_exceeded=...)`` then serve ``create_app(gateway)`` with uvicorn on
  its own port (or mount it: every route is relative to the base URL). ``redis`` is a
  ``redis.asyncio.Redis`` (bytes replies are fine). Several processes may serve it: all state
  is in Redis and the database.
* **Start engines** with ``token = RunTokens(load_master_key(settings)).issue(run.id,
  ttl_s=GatewaySettings().token_ttl_s)`` as the API key, never the provider key:
  Claude Code ``ANTHROPIC_BASE_URL=<gateway>`` (no ``/v1``; it sends ``HEAD /`` first)
  and ``ANTHROPIC_API_KEY=<token>``; Codex ``base_url = "<gateway>/v1"`` with
  ``wire_api = "responses"`` and ``env_key`` naming a variable holding the token; opencode
  ``options.baseURL = "<gateway>/v1"``, ``apiKey = <token>``; aider ``--openai-api-base
  <gateway>/v1 --openai-api-key <token>`` (better from a file or the environment than the
  command line). In a container, ``<gateway>`` is the host's address as the container sees
  it; with a worker network of ``none`` the gateway cannot be reached.
* **Stop over-budget runs**: ``on_budget_exceeded(run_id, reason)`` is awaited (on a task)
  once per refused call; connect it to stopping the run FAILED with ``reason`` (``budget
  exceeded: $4.12 of $4.00 per run``).
* **Upstreams**: implement :class:`~gaffer.gateway.upstreams.UpstreamResolver` over the
  credentials store (``upstream(run, api) -> Upstream(base_url, api_key, provider)``);
  :class:`~gaffer.gateway.upstreams.StoredUpstreams` (table ``gateway_upstreams``) serves until
  then.
* **Limits per project and agent**: pass a :class:`~gaffer.gateway.budgets.LimitsSource`
  (:class:`~gaffer.gateway.budgets.SettingsLimits` takes overrides keyed by project id and
  agent type).
* **New runs of a project over its monthly budget**:
  :func:`~gaffer.gateway.budgets.monthly_budget_refusal` gives the reason to record the
  trigger as ignored with.
* **Run totals** for ``gaffer runs show``: :func:`~gaffer.gateway.usage.run_totals`.
* **CLI**: ``app.command("usage")(usage_command)`` from :mod:`gaffer.cli.usage`.
"""
