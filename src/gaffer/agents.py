"""The agent types gaffer knows: what an agent run is asked to do.

An agent type names a role (implementation, review, ...); an engine (``gaffer.engines``) is the
program that plays it. Values are stable identifiers: they appear in branch names
(``gaffer/<agent>/<work-item>``), trigger configs, and run records.
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
