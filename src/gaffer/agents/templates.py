"""Prompt templates: Jinja2 in a sandboxed environment with ``StrictUndefined``.

Why sandboxed: a project admin's template override runs in gaffer's processes; the sandbox
refuses attribute access to Python internals (``__class__``, ``__globals__``...), so a template
cannot reach beyond the variables it is given. Why ``StrictUndefined``: a template naming a
variable the run does not have must fail the run with the variable's name, never render an empty
string into the agent's instructions (an agent told "fix issue #" fixes the wrong thing).
Templates guard optional variables with ``{% if name is defined %}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

_ENV = SandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False
)


class TemplateError(ValueError):
    """A template does not parse, names a variable it may not use, or failed to render.

    ``template`` names it (``"task_prompt"``); ``variable`` is the missing or forbidden
    variable when that is the cause.
    """

    def __init__(self, template: str, message: str, variable: str | None = None) -> None:
        super().__init__(f"{template}: {message}")
        self.template = template
        self.variable = variable


def referenced_variables(name: str, source: str) -> set[str]:
    """The top-level variable names ``source`` reads. Raises :class:`TemplateError` when it
    does not parse (with the line)."""
    try:
        return set(meta.find_undeclared_variables(_ENV.parse(source)))
    except TemplateSyntaxError as exc:
        raise TemplateError(name, f"line {exc.lineno}: {exc.message}") from exc


def check_template(name: str, source: str, allowed: Iterable[str]) -> None:
    """Refuse ``source`` unless it parses and reads only ``allowed`` variables.

    Raises :class:`TemplateError` naming the first forbidden variable (sorted).
    """
    unknown = sorted(referenced_variables(name, source) - set(allowed))
    if unknown:
        raise TemplateError(
            name,
            f"uses {unknown[0]!r}, which is not among the agent's variables "
            f"({', '.join(sorted(allowed))})",
            variable=unknown[0],
        )


def render(name: str, source: str, variables: Mapping[str, Any]) -> str:
    """Render ``source`` with ``variables`` (stripped of leading/trailing blank lines).

    Raises :class:`TemplateError`: syntax error, a variable that is not defined (its name in
    :attr:`TemplateError.variable`), or an operation the sandbox forbids.
    """
    try:
        return _ENV.from_string(source).render(**variables).strip() + "\n"
    except TemplateSyntaxError as exc:
        raise TemplateError(name, f"line {exc.lineno}: {exc.message}") from exc
    except UndefinedError as exc:
        missing = _undefined_name(str(exc.message or ""))
        raise TemplateError(
            name, f"variable {missing!r} is undefined for this run", variable=missing
        ) from exc
    except SecurityError as exc:
        raise TemplateError(name, f"forbidden by the sandbox: {exc}") from exc


def _undefined_name(message: str) -> str:
    # Jinja2 says "'pr_title' is undefined" (or "'dict object' has no attribute 'x'").
    if message.startswith("'") and "' is undefined" in message:
        return message[1 : message.index("' is undefined")]
    if "has no attribute '" in message:
        return message.rsplit("has no attribute '", 1)[1].rstrip("'")
    return message
