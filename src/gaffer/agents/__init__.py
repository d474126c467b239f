"""Agent types and their definitions: what an agent run is asked to do, and what it must leave.

An agent type names a role (implementation, review, ...); an engine (``gaffer.engines``) is the
program that plays it. Values are stable identifiers: they appear in branch names
(``gaffer/<agent>/<work-item>``), trigger configs, and run records. Each type has a definition
shipped as YAML in ``definitions/`` (:mod:`gaffer.agents.definition`), which a project may
override field by field (:mod:`gaffer.agents.effective`).
"""

from __future__ import annotations

import enum


class AgentType(enum.StrEnum):
    """Agent roles, named as they appear in configs, branches and run records."""

    PLANNING = "planning"
    IMPLEMENTATION = "implementation"
    REVIEW = "review"
    RESPOND_TO_REVIEW = "respond-to-review"
    RESPOND_TO_CI = "respond-to-ci"
    RESPOND_TO_PR_COMMENT = "respond-to-pr-comment"
    RESOLVE_CONFLICTS = "resolve-conflicts"
    DEBUG = "debug"
