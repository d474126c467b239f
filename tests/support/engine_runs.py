"""Set-up shared by the engine tests (tests/test_engine_*.py, tests/test_gateway_engines.py).

Two levels, as those tests drive the real CLIs:

* one engine invocation, in-process: :class:`EngineRun` makes a real git checkout with one
  commit, a scratch directory with the engine's home, a wrapper in front of the CLI that
  records the argv (and the environment) the CLI really got, and the :class:`Invocation` of
  an implementation agent on it; :meth:`EngineRun.run` runs the engine, :meth:`EngineRun.log`
  reads what it reported;
* a run through a running gaffer: :func:`engine_project` makes a project whose agent plays on
  an engine against the scripted model server (:class:`EngineSetup`), its key stored as one of
  the project's credentials; :func:`deliver_issue` starts a run; :func:`git_show` reads what
  it pushed; :func:`wait_for_pid_file` and :func:`wait_until_gone` follow a command the agent
  ran (a cancel must stop it).

The CLIs are the ones ``scripts/install-engines`` puts in ``$GAFFER_ENGINES_DIR/bin``
(:func:`engine_cli`): a missing CLI fails the tests, it is never a skip.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from gaffer.engines.base import Engine, EngineResult, Invocation, ModelEndpoint
from gaffer.queue.jobs import EngineSpec, JobData, RepositorySpec, TaskSpec
from gaffer.store.agents import set_agent
from gaffer.store.credentials import set_credential
from gaffer.store.models import RunStatus
from gaffer.store.projects import get_project
from gaffer.worker.events import Reporter
from tests.support.harness import Gaffer, ProjectInfo, fixture_body
from tests.support.model_server import ModelServer

ENGINES_BIN = Path(os.environ.get("GAFFER_ENGINES_DIR", "/opt/gaffer-engines")) / "bin"
"""Where ``scripts/install-engines`` puts the CLIs (``$GAFFER_ENGINES_DIR/bin``)."""

SYSTEM_PROMPT = "You are gaffer's implementation agent."
"""The system prompt of an :class:`EngineRun`'s invocation."""
PROMPT = "Write HELLO.md saying hi."
"""The prompt of an :class:`EngineRun`'s invocation."""


def engine_cli(executable: str, install_name: str) -> Path:
    """The installed CLI ``executable`` (e.g. ``"claude"``) in :data:`ENGINES_BIN`.

    Raises AssertionError, saying to run ``scripts/install-engines <install_name>``, when it
    is missing or not executable."""
    cli = ENGINES_BIN / executable
    assert os.access(cli, os.X_OK), f"{cli} is missing: run scripts/install-engines {install_name}"
    return cli


def git_commit_all(checkout: Path, message: str) -> None:
    """``git add -A`` and commit in ``checkout`` as ``t <t@t>``. Raises CalledProcessError."""
    git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", message], check=True)


class EngineRun:
    """One engine invocation's inputs and what it reported.

    Under ``root``: ``tree`` (:attr:`checkout`, a git repository on ``main`` with a committed
    ``README.md``), ``scratch`` (:attr:`scratch`, with the engine's ``home``), the CLI wrapper,
    and the files the wrapper records. The invocation (:attr:`invocation`) is an
    implementation agent's first turn on ``engine_name`` (its ``path`` setting is the wrapper),
    with ``model`` as its endpoint and :data:`SYSTEM_PROMPT` / :data:`PROMPT`; ``invocation``
    sets other :class:`Invocation` fields (e.g. ``max_turns=8``). The engine reports JSON lines into
    :attr:`out`.

    The default wrapper is a shell script that appends each argument of every call, one a
    line, to :attr:`argv_file` (``argv.txt``) and writes the CLI's environment to
    :attr:`env_file` (``cli-env.txt``, of the last call), then execs ``cli``. A subclass may
    record otherwise: override :attr:`argv_name` and :meth:`wrapper_script`.
    """

    argv_name = "argv.txt"
    """The name under ``root`` of the file the wrapper records the argv in."""

    def __init__(
        self,
        root: Path,
        cli: Path,
        engine: Engine,
        *,
        engine_name: str,
        model: ModelEndpoint,
        **invocation: Any,
    ) -> None:
        self.root = root
        self.engine = engine
        self.checkout = root / "tree"
        self.scratch = root / "scratch"
        (self.scratch / "home").mkdir(parents=True)
        subprocess.run(["git", "init", "-q", "-b", "main", str(self.checkout)], check=True)
        (self.checkout / "README.md").write_text("# r\n")
        self.commit("init")
        self.argv_file = root / self.argv_name
        self.env_file = root / "cli-env.txt"
        wrapper = root / f"{engine_name}-wrapper"
        wrapper.write_text(self.wrapper_script(cli))
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
        self.out = io.StringIO()
        job = JobData(
            run_id=uuid.uuid4().hex,
            project_id="p",
            project_name="hello",
            agent_type="implementation",
            repository=RepositorySpec(full_name="o/r", clone_url=str(self.checkout)),
            engine=EngineSpec(name=engine_name, settings={"path": str(wrapper)}),
            task=TaskSpec(
                agent_type="implementation",
                repository="o/r",
                work_item="7",
                trigger="issues.labeled",
                provider="github",
            ),
            branch="gaffer/implementation/7",
            timeout_s=60,
        )
        self.invocation = Invocation(
            job=job,
            checkout=self.checkout,
            scratch=self.scratch,
            home=self.scratch / "home",
            reporter=Reporter(self.out),
            system_prompt=SYSTEM_PROMPT,
            prompt=PROMPT,
            model=model,
            **invocation,
        )

    def wrapper_script(self, cli: Path) -> str:
        """The text of the executable put in front of ``cli`` (see the class docstring)."""
        return (
            f'#!/bin/sh\nprintf "%s\\n" "$@" >> {self.argv_file}\nenv > {self.env_file}\n'
            f'exec {cli} "$@"\n'
        )

    def commit(self, message: str) -> None:
        """Commit everything in the checkout (:func:`git_commit_all`)."""
        git_commit_all(self.checkout, message)

    def run(self, **changes: Any) -> EngineResult:
        """Run the engine on the invocation with ``changes`` (:func:`dataclasses.replace`
        fields: ``prompt``, ``turn``, ``resume``, ``session_id``, ``job``, ``user``...). Raises
        what the engine raises (:class:`gaffer.engines.base.EngineError`)."""
        return self.engine.run(replace(self.invocation, **changes))

    def events(self) -> list[dict[str, Any]]:
        """The JSON lines the engine reported, in order."""
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def log(self) -> list[str]:
        """The messages of the ``log`` events the engine reported, in order."""
        return [e["message"] for e in self.events() if e["event"] == "log"]

    def cli_env(self) -> dict[str, str]:
        """The environment the CLI got on its last call, as the default wrapper recorded it."""
        return dict(
            line.split("=", 1) for line in self.env_file.read_text().splitlines() if "=" in line
        )


@contextmanager
def user_reachable_dir(prefix: str) -> Iterator[Path]:
    """A fresh directory (mode 0755) an unprivileged engine user can reach, removed after the
    block: pytest's ``tmp_path`` lies under a 0700 directory of root's."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class EngineSetup:
    """How a test project's agent plays: on ``engine`` (``"claude-code"``, ``"codex"``,
    ``"opencode"``, ``"aider"``) with ``model``, ``key`` stored as the project's credential
    ``credential`` (e.g. ``"OPENAI_API_KEY"``, the engine's default name)."""

    engine: str
    model: str
    credential: str
    key: str

    def base_url(self, server: ModelServer) -> str:
        """Where the engine finds ``server``: its Anthropic URL for claude-code, its OpenAI
        URL (``/v1``) for the others."""
        return server.anthropic_url if self.engine == "claude-code" else server.openai_url


def engine_project(
    gaffer: Gaffer,
    server: ModelServer,
    setup: EngineSetup,
    agent: str = "implementation",
    pr_branch: str | None = None,
) -> ProjectInfo:
    """A project (with a bare repository, :meth:`Gaffer.create_project`) whose ``agent`` plays
    as ``setup`` says against ``server`` (the scripted model server; through gaffer's gateway
    when it is on, as the upstream). ``pr_branch``: the head branch of the fixture PRs, created
    in the bare repository."""
    project = gaffer.create_project(agents=[agent], pr_branch=pr_branch)
    with gaffer.rt.db.session() as session:
        found = get_project(session, project.name)
        set_credential(session, gaffer.rt.box, found.id, setup.credential, setup.key)
        set_agent(
            session,
            found,
            agent,
            engine=setup.engine,
            engine_settings={},
            overrides={"model": setup.model, "base_url": setup.base_url(server)},
        )
    return project


def deliver_issue(gaffer: Gaffer, project: ProjectInfo) -> str:
    """Deliver the ``issues.labeled`` fixture to ``project`` (a fresh delivery id) and return
    the id of the one run it started. Raises AssertionError when it is not accepted (202)
    with one run."""
    return deliver_fixture(gaffer, project, "issues.labeled", "issues")


def deliver_fixture(gaffer: Gaffer, project: ProjectInfo, fixture: str, event: str) -> str:
    """Deliver the payload fixture ``fixture`` as GitHub event ``event`` (a fresh delivery id)
    and return the id of the one run it started. Raises AssertionError when it is not
    accepted (202) with one run."""
    response = gaffer.deliver(fixture_body(fixture), event, project.secret)
    assert response.status_code == 202, response.text
    [run_id] = response.json()["runs"]
    return str(run_id)


def git_show(bare: Path, *args: str) -> str:
    """The output of ``git show ARGS`` in the repository ``bare``. Raises CalledProcessError."""
    return subprocess.run(
        ["git", "show", *args], cwd=bare, capture_output=True, text=True, check=True
    ).stdout


def alive(pid: int) -> bool:
    """True while process ``pid`` exists and is not a zombie (read from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def wait_until_gone(pid: int, message: str, timeout_s: float = 30.0) -> None:
    """Wait until process ``pid`` is gone (:func:`alive` is False), polling every 50 ms.
    Raises AssertionError with ``message`` after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def wait_for_pid_file(gaffer: Gaffer, run_id: str, pid_file: Path, timeout_s: float = 120.0) -> int:
    """Wait, while the run stays RUNNING, until the agent's command wrote its pid to
    ``pid_file``, and return that pid. Raises AssertionError when the run leaves RUNNING
    first, or after ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    while not pid_file.exists() or not pid_file.read_text().strip():
        assert RunStatus(gaffer.run(run_id)["status"]) is RunStatus.RUNNING
        assert time.monotonic() < deadline, "the agent's command never started"
        time.sleep(0.05)
    return int(pid_file.read_text())
