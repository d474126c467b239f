"""Usage read from each streaming format however the bytes are cut into chunks, and a
project's monthly refusal read from the usage rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gaffer.gateway.budgets import monthly_budget_refusal
from gaffer.gateway.protocols import ANTHROPIC, CHAT, RESPONSES, SSEScanner, Usage, WireProtocol
from gaffer.gateway.protocols.base import parse_event
from gaffer.gateway.runs import RunInfo
from gaffer.gateway.usage import CallRecord, record_call
from gaffer.settings import Settings
from gaffer.store.db import Database
from gaffer.store.migrate import migrate
from gaffer.store.models import RunStatus
from tests.support.store import add_runs


def sse(data: dict[str, object], event: str | None = None, crlf: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    head = f"event: {event}{nl}" if event else ""
    return f"{head}data: {json.dumps(data)}{nl}{nl}".encode()


ANTHROPIC_STREAM = b"".join(
    [
        sse(
            {
                "type": "message_start",
                "message": {
                    "id": "msg_1",
                    "model": "claude-opus-4-5",
                    "usage": {
                        "input_tokens": 11,
                        "cache_creation_input_tokens": 22,
                        "cache_read_input_tokens": 33,
                        "output_tokens": 1,
                    },
                },
            },
            "message_start",
        ),
        *(
            sse({"type": "content_block_delta", "delta": {"text": f"{i}"}}, "content_block_delta")
            for i in range(30)
        ),
        sse({"type": "message_delta", "usage": {"output_tokens": 44}}, "message_delta"),
        sse({"type": "message_stop"}, "message_stop"),
    ]
)
RESPONSES_STREAM = b"".join(
    [
        sse(
            {"type": "response.created", "response": {"id": "r1", "model": "gpt-5", "usage": None}}
        ),
        *(sse({"type": "response.output_text.delta", "delta": "x"}) for _ in range(30)),
        sse(
            {
                "type": "response.completed",
                "response": {
                    "id": "r1",
                    "model": "gpt-5",
                    "usage": {
                        "input_tokens": 50,
                        "input_tokens_details": {"cached_tokens": 20},
                        "output_tokens": 44,
                    },
                },
            },
            crlf=True,
        ),
    ]
)
CHAT_STREAM = b"".join(
    [
        *(
            sse({"id": "c1", "choices": [{"delta": {"content": "x"}}], "usage": None})
            for _ in range(30)
        ),
        sse(
            {
                "id": "c1",
                "model": "gpt-4.1",
                "choices": [],
                "usage": {
                    "prompt_tokens": 50,
                    "completion_tokens": 44,
                    "prompt_tokens_details": {"cached_tokens": 20},
                },
            }
        ),
        b"data: [DONE]\n\n",
    ]
)


@pytest.mark.parametrize(
    ("protocol", "stream", "expected"),
    [
        (ANTHROPIC, ANTHROPIC_STREAM, (11, 44, 33, 22, "claude-opus-4-5")),
        (RESPONSES, RESPONSES_STREAM, (30, 44, 20, 0, "gpt-5")),
        (CHAT, CHAT_STREAM, (30, 44, 20, 0, "gpt-4.1")),
    ],
)
@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_usage_is_read_whatever_the_chunks(
    protocol: WireProtocol, stream: bytes, expected: tuple[object, ...], size: int
) -> None:
    scanner = SSEScanner()
    usage = Usage()
    for start in range(0, len(stream), size):
        for event in scanner.feed_marked(stream[start : start + size], protocol.wants_event):
            if protocol.wants_event(event):
                protocol.usage_from_event(*parse_event(event), usage)
    got = (
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_tokens,
        usage.cache_write_tokens,
        usage.model,
    )
    assert got == expected
    assert scanner.rest == b""


def test_a_project_over_its_monthly_budget_is_refused_new_runs(tmp_path: Path) -> None:
    db = Database(Settings(home=tmp_path, database_url=None, master_key=None))
    migrate(db)
    project_id = add_runs(db, "a" * 32)
    run = RunInfo("a" * 32, project_id, "review", RunStatus.RUNNING)
    now = datetime(2026, 12, 15, tzinfo=UTC)
    for at, cost in ((datetime(2026, 11, 30, 23, tzinfo=UTC), 9 * 10**9), (now, 3 * 10**9)):
        record = CallRecord(run=run, api="chat", provider="p", model="m", started_at=at)
        record.cost_nano_usd = cost
        record_call(db, record)
    with db.session() as session:
        assert monthly_budget_refusal(session, project_id, 4 * 10**9, now=now) is None
        assert monthly_budget_refusal(session, project_id, 0, now=now) is None
        assert monthly_budget_refusal(session, project_id, 3 * 10**9, now=now) == (
            "budget exceeded: $3.00 of $3.00 of the project's monthly budget"
        )
    db.dispose()


@pytest.mark.anyio
async def test_stored_upstreams_give_each_project_its_key_per_api(
    tmp_path: Path, database_url: str | None
) -> None:
    from cryptography.fernet import Fernet

    from gaffer.gateway.upstreams import StoredUpstreams, UpstreamNotConfigured, set_upstream
    from gaffer.store.crypto import SecretBox
    from gaffer.store.models import GatewayUpstream

    db = Database(Settings(home=tmp_path, database_url=database_url, master_key=None))
    migrate(db)
    project_id = add_runs(db, "a" * 32)
    box = SecretBox(Fernet.generate_key())
    with db.session() as session:
        set_upstream(
            session,
            box,
            project_id=project_id,
            api="anthropic",
            provider="anthropic",
            base_url="https://api.anthropic.example",
            api_key="sk-ant-secret",
        )
    run = RunInfo("a" * 32, project_id, "review", RunStatus.RUNNING)
    upstreams = StoredUpstreams(db, box, cache_s=0)
    found = await upstreams.upstream(run, "anthropic")
    assert (found.base_url, found.api_key, found.provider) == (
        "https://api.anthropic.example",
        "sk-ant-secret",
        "anthropic",
    )
    assert "sk-ant-secret" not in repr(found)
    with db.session() as session:
        row = session.get(GatewayUpstream, (project_id, "anthropic"))
        assert row is not None and b"sk-ant-secret" not in row.api_key_encrypted
    with pytest.raises(UpstreamNotConfigured, match="no upstream for the chat API"):
        await upstreams.upstream(run, "chat")
    db.dispose()
