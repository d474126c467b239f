"""Agent definitions: one YAML file per agent type, shipped in ``gaffer/agents/definitions/``.

A definition (:class:`AgentDefinition`) holds a label, the system and task prompt templates
(:mod:`gaffer.agents.templates`), the variables they may use, the branch mode, the finish rule
and the limits. :func:`load_definitions` reads and validates them all once per process; a bad
file stops start-up with one line naming the file and the field
(:class:`DefinitionError`).

Variables every template may use besides its own list (:data:`BUILTIN_VARIABLES`) are those
every run has. Which of the optional ones a run has depends on what started it; a template
guards those with ``{% if name is defined %}``.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gaffer.agents import AgentType
from gaffer.agents.templates import TemplateError, check_template
from gaffer.errors import UserError
from gaffer.queue.jobs import BranchMode, FinishRule

DEFINITIONS_DIR = Path(__file__).parent / "definitions"

BUILTIN_VARIABLES = frozenset(
    {
        "agent",
        "agent_label",
        "repository",
        "work_item",
        "trigger",
        "provider",
        "branch",
        "base_branch",
        "max_turns",
    }
)
"""Variables every run has."""

OPTIONAL_VARIABLES = frozenset(
    {
        "title",
        "body",
        "url",
        "pr_number",
        "head_branch",
        "head_sha",
        "pr_base_branch",
        "comment_body",
        "comment_id",
        "review_id",
        "review_file",
        "reply_file",
        "plan_file",
        "review_schema",
        "reply_schema",
        "plan_schema",
        "context_dir",
        "failed_run",
        "context",
    }
)
"""Variables a run has when what started it gives them (a PR, a comment, an output file...).
``context`` is the dict of extra context resolved before the run (later: fetched from the
provider); ``failed_run`` is the post-mortem data of a ``debug`` run."""

KNOWN_VARIABLES = BUILTIN_VARIABLES | OPTIONAL_VARIABLES


class DefinitionError(UserError, ValueError):
    """An agent definition is invalid: the message names the file and the field."""


class AgentDefinition(BaseModel):
    """One agent type's definition (see the module docstring and
    :class:`gaffer.queue.jobs.AgentSpec` for the fields' meaning).

    ``enabled_by_default``: whether new projects enable it (``debug`` is off by default).
    ``variables`` must name known variables (:data:`KNOWN_VARIABLES`); both templates may use
    only those and the built-in ones.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1, max_length=100)
    description: str = ""
    branch_mode: BranchMode
    finish_rule: FinishRule
    max_turns: int = Field(ge=1, le=1000)
    continuation_turns: int = Field(default=2, ge=0, le=20)
    merge_base: bool = False
    enabled_by_default: bool = True
    variables: list[str] = Field(default_factory=list)
    system_prompt: str = Field(min_length=1)
    task_prompt: str = Field(min_length=1)

    @model_validator(mode="after")
    def _merge_base_needs_pr_head(self) -> AgentDefinition:
        if self.merge_base and self.branch_mode != "pr-head":
            raise ValueError("merge_base: only an agent in branch mode pr-head can merge")
        return self

    @model_validator(mode="after")
    def _templates_use_known_variables(self) -> AgentDefinition:
        unknown = sorted(set(self.variables) - KNOWN_VARIABLES)
        if unknown:
            raise ValueError(f"variables: unknown variable {unknown[0]!r}")
        allowed = self.allowed_variables
        for field in ("system_prompt", "task_prompt"):
            try:
                check_template(field, getattr(self, field), allowed)
            except TemplateError as exc:
                raise ValueError(str(exc)) from None
        return self

    @property
    def allowed_variables(self) -> frozenset[str]:
        """The variables its templates may read: the built-in ones and its own."""
        return BUILTIN_VARIABLES | frozenset(self.variables)


def parse_definition(name: str, text: str, where: str) -> AgentDefinition:
    """Parse one definition's YAML ``text`` (``where`` names it in errors).

    Raises :class:`DefinitionError` with one line: ``"<where>: <field>: <problem>"``.
    """
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DefinitionError(f"{where}: not valid YAML: {_one_line(str(exc))}") from exc
    if not isinstance(data, dict):
        raise DefinitionError(f"{where}: not a mapping of fields")
    try:
        return AgentDefinition.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        message = _one_line(str(error["msg"]).removeprefix("Value error, "))
        field = ".".join(str(p) for p in error["loc"])
        # A whole-definition check names its field at the start of its message.
        raise DefinitionError(
            f"{where}: {field}: {message}" if field else f"{where}: {message}"
        ) from exc


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_definitions(directory: Path = DEFINITIONS_DIR) -> dict[str, AgentDefinition]:
    """Every agent type's definition from ``directory`` (``<agent-type>.yaml`` each).

    Raises :class:`DefinitionError` for a bad file, a missing agent type's file, or a file
    that names no agent type.
    """
    definitions: dict[str, AgentDefinition] = {}
    known = {a.value for a in AgentType}
    for path in sorted(directory.glob("*.yaml")):
        where = f"agents/definitions/{path.name}"
        if path.stem not in known:
            raise DefinitionError(f"{where}: no agent type {path.stem!r} (known: {sorted(known)})")
        definitions[path.stem] = parse_definition(path.stem, path.read_text(), where)
    missing = sorted(known - set(definitions))
    if missing:
        raise DefinitionError(f"agents/definitions/: no definition for {', '.join(missing)}")
    return definitions


@cache
def definitions() -> dict[str, AgentDefinition]:
    """The shipped definitions, loaded and validated once per process (see
    :func:`load_definitions`)."""
    return load_definitions()


def definition(agent_type: str) -> AgentDefinition:
    """The shipped definition of ``agent_type``. Raises :class:`DefinitionError` for an
    unknown agent type."""
    try:
        return definitions()[agent_type]
    except KeyError:
        raise DefinitionError(
            f"no agent type {agent_type!r} (known: {', '.join(sorted(definitions()))})"
        ) from None
