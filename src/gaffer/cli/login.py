"""``gaffer login`` and ``gaffer logout``: remote mode's stored server and token.

``gaffer login --server URL`` asks for an email and a password (password from standard input
or a hidden prompt), signs in, makes an API token for this CLI (``cli``, 90 days, the user's
highest role), stores it (:func:`gaffer.cli.remote.credentials_path`) and ends the sign-in
session; ``gaffer logout`` revokes and forgets it. ``--token-stdin`` stores a token read from
standard input instead, after checking it.
"""

from __future__ import annotations

import socket

import httpx
import typer

from gaffer.accounts.bearer import SHOWN_PREFIX_LENGTH
from gaffer.cli import context, remote
from gaffer.cli.output import console, err_console
from gaffer.cli.prompts import read_secret

COOKIE = "gaffer_session"


def _highest_role(user: dict[str, object]) -> str:
    if user.get("superadmin"):
        return "superadmin"
    memberships = user.get("memberships") or []
    assert isinstance(memberships, list)
    roles = {m["role"] for m in memberships}
    return "admin" if "admin" in roles else "member"


def login_command(
    server: str = typer.Option(..., "--server", help="The gaffer's URL, e.g. https://gaffer:8080."),
    email: str | None = typer.Option(None, help="Your email (prompted for when omitted)."),
    token_stdin: bool = typer.Option(
        False, "--token-stdin", help="Read an existing API token from standard input."
    ),
) -> None:
    """Sign in to a gaffer server: later commands call its API (remote mode)."""
    base = remote.normalize_server(server)
    if token_stdin:
        token = read_secret("Token")
    else:
        if email is None:
            email = str(typer.prompt("Email"))
        password = read_secret("Password")
        try:
            with httpx.Client(base_url=base + "/api/v1", timeout=remote.TIMEOUT_S) as http:
                answer = http.post("/auth/login", json={"email": email, "password": password})
                remote.check(answer)
                cookie = {"Cookie": f"{COOKIE}={answer.cookies[COOKIE]}"}
                made = http.post(
                    "/tokens",
                    json={
                        "name": f"cli@{socket.gethostname()}"[:200],
                        "role": _highest_role(answer.json()),
                        "expires_in_days": 90,
                    },
                    headers=cookie,
                )
                remote.check(made)
                token = made.json()["token"]
                http.post("/auth/logout", headers=cookie)
        except httpx.HTTPError as exc:
            raise context.CliError(f"the server {base} cannot be reached: {exc}") from exc
    me = remote.RemoteClient(base, token).get("/me")
    path = remote.store_credentials(base, token)
    console.print(f"logged in to {base} as {me['email']}", highlight=False)
    err_console.print(f"(token stored in {path})", highlight=False)


def logout_command() -> None:
    """Revoke the stored token (if the server can be reached) and forget it."""
    stored = remote.stored_credentials()
    if not stored:
        console.print("not logged in")
        return
    try:
        remote.RemoteClient(stored["server"], stored["token"]).request(
            "DELETE", f"/tokens/{stored['token'][:SHOWN_PREFIX_LENGTH]}"
        )
    except context.CliError as exc:
        err_console.print(f"(the token could not be revoked: {exc})", highlight=False)
    remote.forget_credentials()
    console.print(f"logged out of {stored['server']}", highlight=False)
