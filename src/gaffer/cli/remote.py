"""Remote mode: the CLI calls a gaffer's ``/api/v1`` instead of opening the database.

Remote mode is on when ``GAFFER_SERVER`` and ``GAFFER_TOKEN`` are set, or after
``gaffer login --server URL`` stored a server and token in :func:`credentials_path`
(``$GAFFER_CONFIG_DIR/remote.json``, default ``~/.config/gaffer/remote.json``, mode 0600).
``GAFFER_SERVER`` alone selects the stored token only if it was stored for that server.
Commands print the same output in both modes; an API error is printed as its message.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from gaffer.cli.context import CliError

TIMEOUT_S = 60.0


def credentials_path() -> Path:
    """Where ``gaffer login`` keeps the server URL and token."""
    base = os.environ.get("GAFFER_CONFIG_DIR")
    if base:
        return Path(base) / "remote.json"
    config_home = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config_home) / "gaffer" / "remote.json"


def store_credentials(server: str, token: str) -> Path:
    """Write ``server`` and ``token`` to :func:`credentials_path`, readable by the owner only."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"server": server, "token": token}, out)
    os.chmod(path, 0o600)
    return path


def forget_credentials() -> bool:
    """Delete the stored credentials; True when there were some."""
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


def stored_credentials() -> dict[str, str]:
    """The stored ``{"server", "token"}``, or ``{}`` when there are none."""
    try:
        data = json.loads(credentials_path().read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def normalize_server(url: str) -> str:
    """``url`` without a trailing slash; raises :class:`CliError` unless it is http(s)."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise CliError(f"the server must be an http:// or https:// URL, got {url!r}")
    return url


class RemoteClient:
    """An ``/api/v1`` client authenticated with a token. Every method raises
    :class:`CliError` with the server's message for an error answer, or when the server
    cannot be reached."""

    def __init__(self, server: str, token: str) -> None:
        self.server = normalize_server(server)
        self.http = httpx.Client(
            base_url=self.server + "/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT_S,
        )

    def request(self, method: str, path: str, *, params: Any = None, json_body: Any = None) -> Any:
        """Send a request; the decoded JSON answer (None for 204)."""
        try:
            answer = self.http.request(method, path, params=params, json=json_body)
        except httpx.HTTPError as exc:
            raise CliError(f"the server {self.server} cannot be reached: {exc}") from exc
        check(answer)
        return answer.json() if answer.content else None

    def path(self, *parts: str) -> str:
        """``/part/part...`` with each part percent-encoded (names may hold any character)."""
        return "".join("/" + quote(part, safe="") for part in parts)

    def get(self, path: str, **params: Any) -> Any:
        """``GET path`` with ``params`` (None values left out)."""
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        """``POST path`` with a JSON ``body``."""
        return self.request("POST", path, json_body=body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        """``PUT path`` with a JSON ``body``."""
        return self.request("PUT", path, json_body=body)

    def patch(self, path: str, body: Any) -> Any:
        """``PATCH path`` with a JSON ``body``."""
        return self.request("PATCH", path, json_body=body)

    def delete(self, path: str, **params: Any) -> Any:
        """``DELETE path`` with ``params`` (None values left out)."""
        return self.request(
            "DELETE", path, params={k: v for k, v in params.items() if v is not None}
        )

    def events(self, path: str, **params: Any) -> Iterator[tuple[str, Any]]:
        """A server-sent event stream as ``(event, decoded data)`` pairs."""
        try:
            with self.http.stream("GET", path, params=params, timeout=None) as stream:
                if stream.status_code >= 400:
                    stream.read()
                    check(stream)
                kind = "message"
                for line in stream.iter_lines():
                    if line.startswith("event: "):
                        kind = line.removeprefix("event: ")
                    elif line.startswith("data: "):
                        yield kind, json.loads(line.removeprefix("data: "))
                        kind = "message"
        except httpx.HTTPError as exc:
            raise CliError(f"the server {self.server} cannot be reached: {exc}") from exc


def check(answer: httpx.Response) -> None:
    """Raise :class:`CliError` with the API's ``error`` message for a 4xx/5xx answer."""
    if answer.status_code < 400:
        return
    try:
        body = answer.json()
    except ValueError:
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    if message is None and isinstance(body, dict) and "detail" in body:
        message = "; ".join(
            f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}"
            for d in body["detail"]
            if isinstance(d, dict)
        ) or str(body["detail"])
    raise CliError(str(message or f"the server answered {answer.status_code}"))


@lru_cache(maxsize=1)
def client() -> RemoteClient | None:
    """The remote client this process should use, or None for local mode (module docstring)."""
    server = os.environ.get("GAFFER_SERVER")
    token = os.environ.get("GAFFER_TOKEN")
    stored = stored_credentials()
    if server and token:
        return RemoteClient(server, token)
    if token and not server:
        raise CliError("GAFFER_TOKEN is set without GAFFER_SERVER")
    if server:
        if stored.get("server") == normalize_server(server) and stored.get("token"):
            return RemoteClient(server, stored["token"])
        raise CliError(f"no token for {server}: set GAFFER_TOKEN or run gaffer login --server")
    if stored.get("server") and stored.get("token"):
        return RemoteClient(stored["server"], stored["token"])
    return None
