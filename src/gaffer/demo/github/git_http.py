"""Git smart HTTP, served by ``git http-backend`` (CGI) behind the fake's auth.

GitHub's rules, as the fake applies them: a public repository may be fetched anonymously; a
private one, and every push, needs Basic auth (user ``x-access-token`` or any user for a PAT,
the token as password) with ``contents: read`` to fetch and ``contents: write`` to push.
Anything else is 401 with ``WWW-Authenticate: Basic`` (git then fails without a prompt when
``GIT_TERMINAL_PROMPT=0``).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response

from gaffer.demo.github.auth import AuthError, authorize, find_token
from gaffer.demo.github.state import Repository, State


def _unauthorized(message: str) -> Response:
    return Response(
        message + "\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Basic realm="GitHub"'},
        media_type="text/plain",
    )


def serve(state: State, repo: Repository, rest: str, request: Request, body: bytes) -> Response:
    """Answer one smart-HTTP request (``info/refs``, ``git-upload-pack``, ``git-receive-pack``)
    for ``repo`` by running ``git http-backend``."""
    assert repo.git_dir is not None
    service = request.query_params.get("service") or rest.rsplit("/", 1)[-1]
    pushing = service == "git-receive-pack"
    header = request.headers.get("authorization")
    user = None
    if pushing or repo.private or header:
        try:
            with state.lock:
                token = find_token(state, header)
                authorize(token, repo.name, ("contents", "write" if pushing else "read"))
        except AuthError as exc:
            if exc.status == 401 or not header:
                return _unauthorized(exc.message)
            return Response(exc.message + "\n", status_code=403, media_type="text/plain")
        user = token.user.login
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "GIT_PROJECT_ROOT": str(repo.git_dir.parent),
        "GIT_HTTP_EXPORT_ALL": "1",
        "PATH_INFO": f"/{repo.git_dir.name}/{rest}",
        "REQUEST_METHOD": request.method,
        "QUERY_STRING": request.url.query,
        "CONTENT_TYPE": request.headers.get("content-type", ""),
        "CONTENT_LENGTH": str(len(body)),
        "REMOTE_ADDR": "127.0.0.1",
    }
    if user:
        env["REMOTE_USER"] = user
    for name in ("content-encoding", "git-protocol"):
        if name in request.headers:
            env["HTTP_" + name.upper().replace("-", "_")] = request.headers[name]
    done = subprocess.run(
        ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
    )
    return _cgi_response(done.stdout)


def _cgi_response(output: bytes) -> Response:
    head, _, payload = output.partition(b"\r\n\r\n")
    if not _:
        head, _, payload = output.partition(b"\n\n")
    status = 200
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.strip().split()[0])
        elif name:
            headers[name.strip()] = value.strip()
    return Response(payload, status_code=status, headers=headers)


def init_bare(path: Path, default_branch: str = "main") -> Path:
    """Create an empty bare repository at ``path`` (``<name>.git``) and return it."""
    subprocess.run(
        ["git", "init", "--quiet", "--bare", "-b", default_branch, str(path)], check=True
    )
    subprocess.run(["git", "-C", str(path), "config", "http.receivepack", "true"], check=True)
    return path
