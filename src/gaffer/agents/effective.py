"""The effective definition of an agent on a project: the shipped one plus the project's
overrides, field by field, with where each field came from.

Overrides (stored per project and agent, ``agent_configs.overrides``) may set the model, the
provider base URL, the credential that holds the API key, the prompts and the limits; the
engine is the agent config's own column. :class:`AgentOverrides` validates them (templates
included) before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gaffer.agents.definition import AgentDefinition, definition
from gaffer.agents.templates import TemplateError, check_template
from gaffer.errors import UserError
from gaffer.queue.jobs import AgentSpec

PACKAGE = "package"
PROJECT = "project override"
ENGINE_DEFAULT = "engine default"

OVERRIDABLE = (
    "model",
    "base_url",
    "credential",
    "system_prompt",
    "task_prompt",
    "max_turns",
    "continuation_turns",
)
"""The fields a project may override (besides the engine, the agent config's own column)."""


class InvalidOverrideError(UserError, ValueError):
    """An override is refused (the message names the field); nothing was written."""


class AgentOverrides(BaseModel):
    """A project's overrides of one agent's definition (absent: the package's value)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, min_length=1, max_length=200)
    base_url: str | None = Field(default=None, pattern=r"^https?://\S+$", max_length=500)
    credential: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
    system_prompt: str | None = Field(default=None, min_length=1, max_length=200_000)
    task_prompt: str | None = Field(default=None, min_length=1, max_length=200_000)
    max_turns: int | None = Field(default=None, ge=1, le=1000)
    continuation_turns: int | None = Field(default=None, ge=0, le=20)

    @field_validator("base_url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value is not None and "@" in value.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("must not carry credentials (set the key with gaffer credentials)")
        return value

    def set_fields(self) -> dict[str, Any]:
        """The overridden fields only."""
        return self.model_dump(exclude_none=True)


def validate_overrides(agent_type: str, values: dict[str, Any]) -> AgentOverrides:
    """``values`` as :class:`AgentOverrides` for ``agent_type``, templates checked against
    the agent's variables. Raises :class:`InvalidOverrideError` naming the field."""
    try:
        overrides = AgentOverrides.model_validate(values)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "overrides"
        message = str(error["msg"]).removeprefix("Value error, ")
        raise InvalidOverrideError(f"{field}: {message}") from exc
    allowed = definition(agent_type).allowed_variables
    for field in ("system_prompt", "task_prompt"):
        source = getattr(overrides, field)
        if source is not None:
            try:
                check_template(field, source, allowed)
            except TemplateError as exc:
                raise InvalidOverrideError(str(exc)) from exc
    return overrides


@dataclass(frozen=True)
class EffectiveAgent:
    """An agent's effective definition on a project: ``spec`` for the job, the engine's
    name and model settings, and ``sources`` (field -> :data:`PACKAGE`, :data:`PROJECT` or
    :data:`ENGINE_DEFAULT`)."""

    spec: AgentSpec
    engine: str
    model: str | None
    base_url: str | None
    credential: str | None
    sources: dict[str, str]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: every field with its value and source."""
        values: dict[str, Any] = {
            **self.spec.model_dump(),
            "engine": self.engine,
            "model": self.model,
            "base_url": self.base_url,
            "credential": self.credential,
        }
        return {
            "agent_type": self.spec.name,
            "fields": {
                k: {"value": v, "source": self.sources.get(k, PACKAGE)} for k, v in values.items()
            },
        }


def effective_agent(
    agent_type: str,
    engine: str,
    overrides: dict[str, Any] | None,
    *,
    default_credential: str | None = None,
    base: AgentDefinition | None = None,
) -> EffectiveAgent:
    """Merge the shipped definition of ``agent_type`` (or ``base``) with ``overrides``.

    ``default_credential`` is the engine's usual credential name (``ANTHROPIC_API_KEY``...).
    Stored overrides that no longer validate (a field renamed since) are ignored field by
    field rather than failing every run. Raises
    :class:`~gaffer.agents.definition.DefinitionError` for an unknown agent type.
    """
    shipped = base or definition(agent_type)
    chosen: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key in OVERRIDABLE and value is not None:
            try:
                AgentOverrides.model_validate({key: value})
            except ValidationError:
                continue
            chosen[key] = value
    sources = {key: PROJECT for key in chosen}
    sources["engine"] = PROJECT
    spec = AgentSpec(
        name=agent_type,
        label=shipped.label,
        branch_mode=shipped.branch_mode,
        finish_rule=shipped.finish_rule,
        max_turns=chosen.get("max_turns", shipped.max_turns),
        continuation_turns=chosen.get("continuation_turns", shipped.continuation_turns),
        merge_base=shipped.merge_base,
        system_prompt=chosen.get("system_prompt", shipped.system_prompt),
        task_prompt=chosen.get("task_prompt", shipped.task_prompt),
        variables=sorted(shipped.allowed_variables),
    )
    credential = chosen.get("credential", default_credential)
    if "credential" not in chosen and default_credential is not None:
        sources["credential"] = ENGINE_DEFAULT
    return EffectiveAgent(
        spec=spec,
        engine=engine,
        model=chosen.get("model"),
        base_url=chosen.get("base_url"),
        credential=credential,
        sources=sources,
    )
