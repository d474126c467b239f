"""What the scripted model says: plan items, usage, and the choice of the answer to one request.

A *plan* is a list of items, each what the model does on the next **agent turn** that carries
no tool result yet (see :class:`Planner`):

- :class:`Shell`: call the CLI's shell tool with a command; once the request carries that
  tool's result, answer ``then``. Aider runs no commands: there the server runs the command
  itself in an empty scratch directory and answers the files it wrote as edit blocks.
- :class:`Edit`: write a file. With a CLI that offers tools this is a shell command too (an
  exact ``printf`` of the content, or a one-shot replacement when ``search`` is given); with
  aider, which offers no tools, it is an edit block in aider's edit format (a *file listing*
  for ``whole``, a SEARCH/REPLACE block for ``diff`` and its kin), followed by ``then``.
- :class:`Say`: answer text only.

The plan used up, the model answers ``Say("done")``. The wire formats are in
:mod:`gaffer.demo.model.wire`; the HTTP server is :mod:`gaffer.demo.model.server`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Protocol = Literal["anthropic", "responses", "chat"]

# The names each CLI gives its shell tool, in the order they are looked for: Claude Code
# "Bash", opencode "bash", Codex "shell" / "exec_command" / "shell_command".
SHELL_TOOLS = ("Bash", "bash", "exec_command", "shell_command", "shell")
AIDER_MARKER = "Act as an expert software developer."


@dataclass(frozen=True)
class Usage:
    """Tokens reported on every answer, in Anthropic's terms: ``input_tokens`` excludes the
    cached input (``cache_read``: read from the prompt cache, ``cache_write``: written to it).
    On the OpenAI wires, ``prompt_tokens``/``input_tokens`` = input_tokens + cache_read and
    ``cached_tokens`` = cache_read (OpenAI counts cached input inside the prompt); cache_write
    exists only on Anthropic's."""

    input_tokens: int = 120
    output_tokens: int = 30
    cache_read: int = 0
    cache_write: int = 0


@dataclass(frozen=True)
class Shell:
    """Run ``command`` with the CLI's shell tool, then answer ``then`` (None: the turn after the
    tool result takes the next plan item instead, for several tool calls in one run)."""

    command: str
    then: str | None = "done"


@dataclass(frozen=True)
class Edit:
    """Write ``content`` to ``path`` (relative to the CLI's working directory), then answer
    ``then``. ``search``: replace that text (its first occurrence) by ``content`` instead of
    writing the whole file (aider's diff formats need it for a file that exists)."""

    path: str
    content: str
    then: str | None = "done"
    search: str | None = None


@dataclass(frozen=True)
class Say:
    """Answer ``text`` and no tool call: the end of the CLI's turn."""

    text: str


PlanItem = Shell | Edit | Say


@dataclass(frozen=True)
class ToolCall:
    """One tool call in an answer: ``arguments`` is the tool's input object."""

    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Answer:
    """What one model call answers: ``text`` (may be empty) and at most one tool call.
    ``kind``: "agent" (an agent turn, from the plan) or "side" (a side call: a title, a quota
    probe...)."""

    text: str
    tool_call: ToolCall | None = None
    kind: Literal["agent", "side"] = "agent"


@dataclass
class Turn:
    """A request as the planner sees it, whatever the wire.

    ``tools``: name -> input JSON schema; ``tool_result_ids``: the call ids of the tool results
    at the end of the conversation (empty when the last message is not a tool result);
    ``system``: the system prompt text; ``key``: a digest of the conversation (a resent
    request, after a cut stream, has the same key)."""

    protocol: Protocol
    model: str
    tools: dict[str, dict[str, Any]]
    tool_result_ids: list[str]
    system: str
    key: str
    max_tokens: int | None = None
    prompt: str = ""
    """The text of the conversation's user messages (the task, and what tools answered)."""


def _text_of(content: Any) -> str:
    """The text of a message content: a string, or a list of blocks with ``text``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(block.get("text", "")) for block in content if isinstance(block, dict))
    return ""


def _digest(value: Any) -> str:
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k != "cache_control"}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return hashlib.sha256(json.dumps(strip(value), sort_keys=True).encode()).hexdigest()[:24]


def turn_of(protocol: Protocol, body: dict[str, Any]) -> Turn:
    """Read a request body of ``protocol`` into a :class:`Turn`.

    Anthropic Messages: ``tools[].name/input_schema``, results are ``tool_result`` blocks of
    the last user message. Responses: ``tools[]`` of type ``function`` (``name``,
    ``parameters``) or ``custom``; results are trailing ``function_call_output`` /
    ``custom_tool_call_output`` input items. Chat: ``tools[].function``; results are trailing
    ``role: tool`` messages."""
    tools: dict[str, dict[str, Any]] = {}
    results: list[str] = []
    system = ""
    if protocol == "anthropic":
        for tool in body.get("tools") or []:
            if isinstance(tool, dict) and "name" in tool:
                tools[str(tool["name"])] = dict(tool.get("input_schema") or {})
        system = _text_of(body.get("system"))
        messages = body.get("messages") or []
        if messages and messages[-1].get("role") == "user":
            content = messages[-1].get("content")
            if isinstance(content, list):
                results = [
                    str(b.get("tool_use_id"))
                    for b in content
                    if isinstance(b, dict) and b.get("type") == "tool_result"
                ]
        conversation: Any = messages
    elif protocol == "responses":
        for tool in body.get("tools") or []:
            if isinstance(tool, dict) and "name" in tool:
                tools[str(tool["name"])] = dict(tool.get("parameters") or {"type": tool["type"]})
        system = str(body.get("instructions") or "")
        items = body.get("input") or []
        if isinstance(items, list):
            for item in reversed(items):
                if not isinstance(item, dict):
                    break
                if item.get("type") in ("function_call_output", "custom_tool_call_output"):
                    results.append(str(item.get("call_id")))
                elif item.get("type") == "reasoning":
                    continue
                else:
                    break
            results.reverse()
        conversation = items
    else:
        for tool in body.get("tools") or []:
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict) and "name" in function:
                tools[str(function["name"])] = dict(function.get("parameters") or {})
        messages = body.get("messages") or []
        system = "\n".join(
            _text_of(m.get("content")) for m in messages if m.get("role") == "system"
        )
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            results.append(str(message.get("tool_call_id")))
        results.reverse()
        conversation = messages
    max_tokens = body.get("max_tokens") or body.get("max_output_tokens")
    prompt = "\n".join(
        _text_of(m.get("content"))
        for m in (conversation if isinstance(conversation, list) else [])
        if isinstance(m, dict) and m.get("role") == "user"
    )
    return Turn(
        protocol=protocol,
        model=str(body.get("model") or ""),
        tools=tools,
        tool_result_ids=results,
        system=system,
        key=_digest(conversation),
        max_tokens=int(max_tokens) if isinstance(max_tokens, int) else None,
        prompt=prompt,
    )


def is_agent_turn(turn: Turn) -> bool:
    """An agent turn offers tools (Claude Code, Codex, opencode) or carries aider's system
    prompt (aider offers none). Anything else is a side call: opencode's tool-less title call,
    Claude Code's small-model calls and quota probes."""
    return bool(turn.tools) or AIDER_MARKER in turn.system


def aider_format(system: str) -> Literal["whole", "diff"]:
    """The edit format aider asked for, read from its system prompt: a *file listing* (whole)
    or SEARCH/REPLACE blocks (diff, diff-fenced, editor-diff...)."""
    return "diff" if "SEARCH/REPLACE" in system else "whole"


def edit_block(item: Edit, fmt: Literal["whole", "diff"]) -> str:
    """``item`` as aider's edit block: a file listing (``whole``) or a SEARCH/REPLACE block."""
    fence = "````" if "```" in item.content or "```" in (item.search or "") else "```"
    body = item.content if item.content.endswith("\n") else item.content + "\n"
    if fmt == "whole":
        return f"{item.path}\n{fence}\n{body}{fence}\n"
    search = item.search or ""
    if search and not search.endswith("\n"):
        search += "\n"
    return (
        f"{item.path}\n{fence}\n<<<<<<< SEARCH\n{search}=======\n{body}>>>>>>> REPLACE\n{fence}\n"
    )


def edit_command(item: Edit) -> str:
    """``item`` as one POSIX shell command: an exact write of the content (parent directories
    made), or a first-occurrence replacement with python3 when ``search`` is given."""
    path = shlex.quote(item.path)
    if item.search is not None:
        code = (
            "import pathlib,sys;p=pathlib.Path(sys.argv[1]);"
            "p.write_text(p.read_text().replace(sys.argv[2],sys.argv[3],1))"
        )
        return (
            f"python3 -c {shlex.quote(code)} {path} "
            f"{shlex.quote(item.search)} {shlex.quote(item.content)}"
        )
    parent = item.path.rsplit("/", 1)[0] if "/" in item.path else ""
    mkdir = f"mkdir -p {shlex.quote(parent)} && " if parent else ""
    return f"{mkdir}printf '%s' {shlex.quote(item.content)} > {path}"


def files_written_by(command: str) -> dict[str, str]:
    """The files ``command`` leaves when run by ``bash`` in an empty scratch directory
    (relative path -> text), for a CLI that cannot run commands (aider): its Shell items become
    whole-file edits of those files. A command that needs the checkout's files sees none."""
    with tempfile.TemporaryDirectory(prefix="gaffer-model-shell-") as scratch:
        subprocess.run(
            ["bash", "-c", command],
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
        root = Path(scratch)
        return {
            str(path.relative_to(root)): path.read_text(errors="replace")
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }


def shell_arguments(name: str, schema: dict[str, Any], command: str) -> dict[str, Any]:
    """The input object for shell tool ``name`` running ``command``, shaped by its JSON schema:
    ``command`` as a string, or as ``["bash", "-lc", command]`` when the schema wants an array
    (Codex's ``shell``); ``cmd`` (Codex's ``exec_command``); a ``description`` when asked."""
    props = schema.get("properties") or {}
    args: dict[str, Any] = {}
    if "command" in props or not props:
        if (props.get("command") or {}).get("type") == "array":
            args["command"] = ["bash", "-lc", command]
        else:
            args["command"] = command
    if "cmd" in props:
        args["cmd"] = command
    if "description" in props:
        args["description"] = "Run the scripted command"
    return args


@dataclass
class Planner:
    """Chooses the answer to each agent turn from the plan (not thread-safe: the server holds
    its lock around :meth:`answer`).

    - A turn whose conversation ends with tool results answers the ``then`` of the item that
      made that call (``then=None``: takes the next item); an unknown call id answers "done".
    - A turn that carries no tool result takes the next plan item.
    - A turn identical to the last one answered (the same conversation) whose answer was not
      delivered whole (a cut stream, a held answer the client gave up on: see
      :meth:`delivered`) gets the same answer again and consumes nothing: that is the CLI
      resending after a failure. Once delivered, the same conversation again is a new turn.
    - Side calls (see :func:`is_agent_turn`) answer ``side_text`` and consume nothing."""

    plan: list[PlanItem] = field(default_factory=list)
    side_text: str = "Scripted task"
    policy: Callable[[Turn], PlanItem] | None = None
    """What a new agent turn does once the plan is used up (None: ``Say("done")``); the demo's
    model decides from the task (see :mod:`gaffer.demo.engine`)."""
    _next: int = 0
    _calls: dict[str, PlanItem] = field(default_factory=dict)
    _last: tuple[str, Answer] | None = None
    _last_delivered: bool = False
    _counter: int = 0

    def script(self, plan: list[PlanItem]) -> None:
        """Replace the plan; what was pending is forgotten."""
        self.plan = list(plan)
        self._next = 0
        self._calls.clear()
        self._last = None

    @property
    def remaining(self) -> int:
        """How many plan items have not been used yet."""
        return len(self.plan) - self._next

    def answer(self, turn: Turn) -> Answer:
        """The answer to ``turn`` (advances the plan for a new agent turn)."""
        if not is_agent_turn(turn):
            return Answer(text=self.side_text, kind="side")
        if self._last is not None and self._last[0] == turn.key and not self._last_delivered:
            return self._last[1]
        answer = self._choose(turn)
        self._last = (turn.key, answer)
        self._last_delivered = False
        return answer

    def delivered(self, key: str) -> None:
        """The answer to the turn with conversation digest ``key`` reached the client whole."""
        if self._last is not None and self._last[0] == key:
            self._last_delivered = True

    def _take(self, turn: Turn) -> PlanItem:
        if self._next < len(self.plan):
            item = self.plan[self._next]
            self._next += 1
            return item
        if self.policy is not None:
            return self.policy(turn)
        return Say("done")

    def _choose(self, turn: Turn) -> Answer:
        if turn.tool_result_ids:
            made = [self._calls[i] for i in turn.tool_result_ids if i in self._calls]
            if not made:
                return Answer(text="done")
            then = made[-1].then if isinstance(made[-1], Shell | Edit) else None
            if then is not None:
                return Answer(text=then)
        return self._act(self._take(turn), turn)

    def _act(self, item: PlanItem, turn: Turn) -> Answer:
        if isinstance(item, Say):
            return Answer(text=item.text)
        shell = next((name for name in SHELL_TOOLS if name in turn.tools), None)
        if shell is None:
            # No shell tool: aider (or a CLI we do not know). Edit blocks in its format; a Shell
            # becomes a suggested command in a bash fence (aider shows it, never runs it).
            fmt = aider_format(turn.system)
            if isinstance(item, Edit):
                edits = [item]
            else:
                edits = [Edit(p, c) for p, c in files_written_by(item.command).items()]
            blocks = "".join(edit_block(edit, fmt) + "\n" for edit in edits)
            return Answer(text=f"{blocks}{item.then or 'done'}")
        command = item.command if isinstance(item, Shell) else edit_command(item)
        self._counter += 1
        prefix = "toolu" if turn.protocol == "anthropic" else "call"
        call_id = f"{prefix}_gaffer_{self._counter:04d}"
        self._calls[call_id] = item
        args = shell_arguments(shell, turn.tools[shell], command)
        return Answer(text="", tool_call=ToolCall(call_id=call_id, name=shell, arguments=args))


def words(text: str) -> list[str]:
    """``text`` cut into word-sized pieces (whitespace kept) for streamed deltas."""
    return re.findall(r"\S+\s*|\s+", text) or [""]
