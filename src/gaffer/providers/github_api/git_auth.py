"""How a worker's git authenticates to GitHub over HTTPS without writing the token anywhere.

GitHub's rule ("Authenticating as a GitHub App installation"): git over HTTPS takes the
installation token as the password of user ``x-access-token`` (a PAT works the same way).
The header is passed through git's ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n``/
``GIT_CONFIG_VALUE_n`` environment (git 2.31+), so nothing lands in ``.git/config`` (a token
in the remote URL would) or on a command line.
"""

from __future__ import annotations

import base64


def git_auth_env(token: str, existing: dict[str, str] | None = None) -> dict[str, str]:
    """Environment variables that make git send ``Authorization: Basic <x-access-token:TOKEN>``
    on every HTTP request, appended after any ``GIT_CONFIG_*`` entries already in
    ``existing`` (a mapping of the environment the git command will get; not modified).

    Also sets ``GIT_TERMINAL_PROMPT=0`` so a refused token fails instead of prompting.
    Raises ``ValueError`` for an empty token or one with whitespace (it would split the header).
    """
    if not token or any(c.isspace() for c in token):
        raise ValueError("the token is empty or contains whitespace")
    base = existing or {}
    count = int(base.get("GIT_CONFIG_COUNT", "0") or "0")
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    return {
        "GIT_CONFIG_COUNT": str(count + 1),
        f"GIT_CONFIG_KEY_{count}": "http.extraHeader",
        f"GIT_CONFIG_VALUE_{count}": f"Authorization: Basic {basic}",
        "GIT_TERMINAL_PROMPT": "0",
    }


def clone_url(web_url: str, repository: str) -> str:
    """The HTTPS clone URL of ``repository`` (``owner/name``) on ``web_url``
    (``https://github.com`` or a GHES host): no credentials in it, ever."""
    return f"{web_url.rstrip('/')}/{repository}.git"
