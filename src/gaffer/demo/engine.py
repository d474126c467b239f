"""``gaffer demo --engine NAME``: the demo's agents played by a real agent CLI.

The model behind it is the user's own provider when its key is in the environment
(``ANTHROPIC_API_KEY`` for ``claude-code``, ``OPENAI_API_KEY`` for the OpenAI-speaking engines),
else the scripted local model server shipped in the package (:mod:`gaffer.demo.model`), whose
:func:`demo_policy` decides each turn from the task the CLI was given: write the review, reply or
plan file the task names, or change a file of the checkout. Either way every call goes through
gaffer's gateway, which holds the key.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gaffer.demo.model.plan import Edit, PlanItem, Shell, Turn
from gaffer.demo.model.server import ModelServer
from gaffer.engines import DEFAULT_CREDENTIALS, engine_class
from gaffer.engines.base import EngineError
from gaffer.engines.discovery import find_cli
from gaffer.errors import UserError

DEMO_ENGINES = ("claude-code", "codex", "opencode", "aider")
DEMO_MODELS = {"claude-code": "claude-haiku-4-5", "codex": "gpt-5-mini"}
"""The model asked for (the scripted server answers any; a real provider needs a real one)."""
DEFAULT_OPENAI_MODEL = "gpt-5-mini"
INSTALL_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "install-engines"
_OUTPUT = re.compile(r"(/\S+/out/(review|reply|plan)\.json)")


class DemoEngineError(UserError, RuntimeError):
    """The demo cannot run with that engine (not installed, say); the message says what to do."""


@dataclass(frozen=True)
class DemoModel:
    """Where the demo's model calls go: ``base_url`` (None: the provider's public API), the
    ``key`` stored as the project's credential, and ``label`` (what the report shows)."""

    base_url: str | None
    key: str
    model: str
    label: str


def demo_policy(turn: Turn) -> PlanItem:
    """The scripted model's move on a new agent turn: write the output file the task names
    (a review, reply or plan, valid against its schema), else add a file to the checkout."""
    match = _OUTPUT.search(turn.prompt + "\n" + turn.system)
    if match is None:
        note = "# Demo change\n\nMade by the demo's scripted model through a real agent CLI.\n"
        return Edit("DEMO_CHANGE.md", note, then="Added DEMO_CHANGE.md with a note.")
    path, kind = match.group(1), match.group(2)
    documents = {
        "review": {
            "event": "COMMENT",
            "body": "Reviewed by the demo's scripted model.",
            "comments": [],
        },
        "reply": {"body": "Answered by the demo's scripted model."},
        "plan": {"title": "A plan", "body": "1. Read the code.\n2. Change it.\n3. Test it."},
    }
    text = json.dumps(documents[kind]).replace("'", "'\\''")
    return Shell(f"printf '%s' '{text}' > {path}", then=f"Wrote the {kind} file.")


def ensure_installed(engine: str, engines_dir: Path, install: bool) -> str:
    """The path of ``engine``'s CLI under ``engines_dir/bin``, installed first with
    ``scripts/install-engines`` when ``install``. Raises :class:`DemoEngineError` saying how to
    install it."""
    cli = engine_class(engine).cli or ""
    search = str(engines_dir / "bin")
    try:
        return find_cli(cli, path=search)
    except EngineError:
        if not install:
            raise DemoEngineError(
                f"{cli} is not installed in {search}: run ./gaffer demo --engine {engine} "
                f"--install (or scripts/install-engines {engine})"
            ) from None
    env = {**os.environ, "GAFFER_ENGINES_DIR": str(engines_dir)}
    proc = subprocess.run([str(INSTALL_SCRIPT), engine], env=env, check=False)
    if proc.returncode != 0:
        raise DemoEngineError(f"scripts/install-engines {engine} failed (exit {proc.returncode})")
    return find_cli(cli, path=search)


@contextmanager
def demo_model(engine: str, environ: dict[str, str] | None = None) -> Iterator[DemoModel]:
    """The model the demo's ``engine`` talks to (see the module docstring), for the block."""
    environ = dict(os.environ if environ is None else environ)
    credential = DEFAULT_CREDENTIALS.get(engine) or "OPENAI_API_KEY"
    model = DEMO_MODELS.get(engine, DEFAULT_OPENAI_MODEL)
    key = environ.get(credential)
    if key:
        yield DemoModel(None, key, model, f"your provider ({credential} from the environment)")
        return
    with ModelServer(model=model, policy=demo_policy) as server:
        base = server.anthropic_url if engine == "claude-code" else server.openai_url
        yield DemoModel(base, "demo-key", model, f"the scripted local model server at {server.url}")
