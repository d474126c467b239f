"""GitHub webhooks: signature verification and parsing.

Signature rule (GitHub docs, "Validating webhook deliveries"): the ``X-Hub-Signature-256``
header is ``sha256=`` followed by the hex HMAC-SHA256 of the raw request body, keyed with the
webhook secret. It is compared in constant time (:func:`hmac.compare_digest`) and checked before
the body is parsed, so unauthenticated input never reaches the JSON parser.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from gaffer.providers.events import Event, MalformedPayloadError, PullRequestRef, WorkItem

PROVIDER = "github"
SIGNATURE_HEADER = "X-Hub-Signature-256"
EVENT_HEADER = "X-GitHub-Event"
DELIVERY_HEADER = "X-GitHub-Delivery"


def sign(body: bytes, secret: str) -> str:
    """The ``X-Hub-Signature-256`` value GitHub would send for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signature_matches(body: bytes, header: str, secret: str) -> bool:
    """True when ``header`` is the valid signature of ``body`` under ``secret`` (constant time)."""
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().encode())


def parse(event_name: str, delivery_id: str, body: bytes) -> Event:
    """Parse a verified GitHub webhook body into an :class:`Event`.

    Raises :class:`MalformedPayloadError` when the body is not a JSON object, or when a field the
    event needs has the wrong type.
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedPayloadError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(payload, dict):
        raise MalformedPayloadError("body is not a JSON object")
    try:
        return _event(event_name, delivery_id, payload)
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise MalformedPayloadError(
            f"{event_name} payload is missing or mistypes a field: {exc!r}"
        ) from exc


def _login(obj: Any) -> str | None:
    if isinstance(obj, dict) and isinstance(obj.get("login"), str):
        return str(obj["login"])
    return None


def _opt_str(obj: dict[str, Any], key: str) -> str | None:
    """``obj[key]`` when it is a string, None when absent or null.

    Raises ``ValueError`` for any other type: a signed body that mistypes a field is a
    malformed delivery (400), caught here so that nothing after parsing can trip on it.
    """
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{key} is a {type(value).__name__}, not a string")


def _opt_int(obj: dict[str, Any], key: str) -> int | None:
    """``obj[key]`` when it is an integer, None when absent or null; ``ValueError`` else."""
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} is a {type(value).__name__}, not an integer")
    return value


def _repo_name(branch: dict[str, Any]) -> str | None:
    repo = branch.get("repo")
    return _opt_str(repo, "full_name") if isinstance(repo, dict) else None


def _pull_request(pr: dict[str, Any]) -> PullRequestRef:
    head = pr.get("head") or {}
    base = pr.get("base") or {}
    return PullRequestRef(
        number=int(pr["number"]),
        head_sha=_opt_str(head, "sha"),
        title=_opt_str(pr, "title") or "",
        body=_opt_str(pr, "body") or "",
        head_ref=_opt_str(head, "ref"),
        draft=bool(pr.get("draft") or False),
        url=_opt_str(pr, "html_url"),
        base_ref=_opt_str(base, "ref"),
        head_repository=_repo_name(head),
    )


def _event(name: str, delivery_id: str, payload: dict[str, Any]) -> Event:
    action = _opt_str(payload, "action")
    repo = payload.get("repository")
    fields: dict[str, Any] = {}

    if name in ("issues", "issue_comment") and "issue" in payload:
        issue = payload["issue"]
        fields["work_item"] = WorkItem(
            number=str(int(issue["number"])),
            title=_opt_str(issue, "title") or "",
            body=_opt_str(issue, "body") or "",
            url=_opt_str(issue, "html_url"),
            is_pull_request="pull_request" in issue,
        )
        if fields["work_item"].is_pull_request:
            fields["pull_requests"] = (
                PullRequestRef(
                    number=int(issue["number"]),
                    head_sha=None,
                    title=fields["work_item"].title,
                    body=fields["work_item"].body,
                    url=fields["work_item"].url,
                ),
            )
    if name in ("pull_request", "pull_request_review", "pull_request_review_comment"):
        pr = _pull_request(payload["pull_request"])
        fields["pull_requests"] = (pr,)
        fields["head_sha"] = pr.head_sha
        fields["work_item"] = WorkItem(
            number=str(pr.number), title=pr.title, body=pr.body, url=pr.url, is_pull_request=True
        )
    if isinstance(payload.get("label"), dict):
        fields["label"] = _opt_str(payload["label"], "name")
    if isinstance(payload.get("comment"), dict):
        fields["comment"] = _opt_str(payload["comment"], "body") or ""
        fields["comment_id"] = _opt_int(payload["comment"], "id")
    if isinstance(payload.get("review"), dict):
        fields["review_state"] = _opt_str(payload["review"], "state")
        fields["review_id"] = _opt_int(payload["review"], "id")
        if review_body := _opt_str(payload["review"], "body"):
            fields["comment"] = review_body
    if "requested_reviewer" in payload:
        fields["requested_reviewer"] = _login(payload["requested_reviewer"])
    if name == "check_suite":
        suite = payload["check_suite"]
        fields["conclusion"] = _opt_str(suite, "conclusion")
        fields["head_sha"] = _opt_str(suite, "head_sha")
        fields["pull_requests"] = tuple(
            PullRequestRef(
                number=int(p["number"]),
                head_sha=_opt_str(p.get("head") or {}, "sha"),
                head_ref=_opt_str(p.get("head") or {}, "ref"),
                base_ref=_opt_str(p.get("base") or {}, "ref"),
                head_repository=_repo_name(p.get("head") or {}),
            )
            for p in suite.get("pull_requests") or []
        )

    return Event(
        provider=PROVIDER,
        name=name,
        action=action,
        delivery_id=delivery_id,
        repository=_opt_str(repo, "full_name") if isinstance(repo, dict) else None,
        sender=_login(payload.get("sender")),
        payload=payload,
        **fields,
    )


def delivery_headers(
    body: bytes, event: str, secret: str | None, delivery_id: str
) -> dict[str, str]:
    """The headers GitHub sends with a delivery: event, delivery id, signature (when
    ``secret`` is given), and the JSON content type. Used by ``gaffer webhook send``."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/gaffer",
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = sign(body, secret)
    return headers
