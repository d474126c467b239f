"""Per-run tokens: signed, naming the run, refused (401, in the provider's shape) when
malformed, forged, expired, or once the run has ended; a refused call never goes upstream."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import openai
import pytest
from cryptography.fernet import Fernet

from gaffer.gateway.tokens import RunTokens, TokenError
from gaffer.settings import Settings
from gaffer.store.models import RunStatus
from tests.support.gateway import Rig, gateway_rig

RUN = "0123456789abcdef0123456789abcdef"


def test_a_token_names_its_run_until_it_expires() -> None:
    tokens = RunTokens(Fernet.generate_key())
    token = tokens.issue(RUN, ttl_s=60, now=1000)
    claims = tokens.verify(token, now=1059)
    assert (claims.run_id, claims.expires_at) == (RUN, 1060)
    with pytest.raises(TokenError, match="expired"):
        tokens.verify(token, now=1060)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: t.replace(RUN, "f" * 32), "bad token signature"),
        (lambda t: t.rsplit(".", 2)[0] + ".99999999999." + t.rsplit(".", 1)[1], "signature"),
        (lambda t: t[:-2], "bad token signature"),
        (lambda t: "sk-ant-" + t, "malformed"),
        (lambda t: t.replace(".", "", 1), "malformed"),
        (lambda t: "", "malformed"),
    ],
)
def test_a_changed_token_is_refused(mangle: Callable[[str], str], reason: str) -> None:
    tokens = RunTokens(Fernet.generate_key())
    with pytest.raises(TokenError, match=reason):
        tokens.verify(mangle(tokens.issue(RUN, ttl_s=60)))


def test_a_token_from_another_master_key_is_refused() -> None:
    token = RunTokens(Fernet.generate_key()).issue(RUN, ttl_s=60)
    with pytest.raises(TokenError, match="signature"):
        RunTokens(Fernet.generate_key()).verify(token)
    with pytest.raises(ValueError, match="32 lowercase hex"):
        RunTokens(Fernet.generate_key()).issue("../x", ttl_s=60)


@pytest.fixture
async def rig(make_settings: Callable[..., Settings]) -> Any:
    async with gateway_rig(make_settings()) as rig:
        yield rig


@pytest.mark.anyio
async def test_a_stolen_token_is_refused_once_its_run_has_ended(rig: Rig) -> None:
    run_id = rig.add_run()
    token = rig.token(run_id)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": []}
    async with httpx.AsyncClient(base_url=rig.url) as http:
        assert (await http.post("/v1/messages", json=body, headers={"x-api-key": token})).is_success
        rig.end_run(run_id, RunStatus.SUCCEEDED)
        refused = await http.post("/v1/messages", json=body, headers={"x-api-key": token})
        assert refused.status_code == 401
        assert refused.json() == {
            "type": "error",
            "error": {"type": "authentication_error", "message": f"run {run_id} has ended"},
        }
        bearer = {"authorization": f"Bearer {token}"}
        chat = await http.post("/v1/chat/completions", json=body, headers=bearer)
        assert chat.status_code == 401
        assert chat.json()["error"]["code"] == "invalid_api_key"
        assert f"run {run_id} has ended" in chat.json()["error"]["message"]
    assert len(rig.upstream.calls) == 1, "a refused call went upstream"
    assert len(await rig.rows(run_id)) == 1


@pytest.mark.anyio
async def test_the_sdks_read_a_refused_token_as_the_providers_authentication_error(
    rig: Rig,
) -> None:
    run_id = rig.add_run(status=RunStatus.CANCELED)
    async with anthropic.AsyncAnthropic(
        base_url=rig.url, api_key=rig.token(run_id), max_retries=0
    ) as client:
        with pytest.raises(anthropic.AuthenticationError, match="has ended"):
            await client.messages.create(
                model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
            )
    async with openai.AsyncOpenAI(
        base_url=rig.url + "/v1", api_key="sk-not-a-gaffer-token", max_retries=0
    ) as oai:
        with pytest.raises(openai.AuthenticationError, match="malformed token"):
            await oai.responses.create(model="gpt-5", input="x")
    expired = rig.gateway.tokens.issue(rig.add_run(), ttl_s=1, now=time.time() - 10)
    async with httpx.AsyncClient(base_url=rig.url) as http:
        answer = await http.post("/v1/messages", json={}, headers={"x-api-key": expired})
        assert answer.status_code == 401 and "token expired" in answer.text
        missing = await http.post("/v1/responses", json={})
        assert missing.status_code == 401 and "no API key" in missing.text
        unknown = rig.gateway.tokens.issue("e" * 32, ttl_s=60)
        answer = await http.post("/v1/messages", json={}, headers={"x-api-key": unknown})
        assert answer.status_code == 401 and "no such run" in answer.text
    assert rig.upstream.calls == []


@pytest.mark.anyio
async def test_a_request_too_large_is_refused_before_it_goes_upstream(
    make_settings: Callable[..., Settings],
) -> None:
    from gaffer.gateway.settings import GatewaySettings

    async with gateway_rig(
        make_settings(), gateway_settings=GatewaySettings(max_request_bytes=4096)
    ) as rig:
        run_id = rig.add_run()
        body = {"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [], "x": "y" * 5000}
        async with httpx.AsyncClient(base_url=rig.url) as http:
            answer = await http.post(
                "/v1/messages", json=body, headers={"x-api-key": rig.token(run_id)}
            )
        assert answer.status_code == 413
        assert answer.json()["error"]["type"] == "request_too_large"
        assert rig.upstream.calls == []
