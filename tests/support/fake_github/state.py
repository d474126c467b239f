"""The fake's state: the stand-in's (:mod:`gaffer.demo.github.state`), re-exported."""

from gaffer.demo.github.state import (
    CheckRun,
    Comment,
    Installation,
    Issue,
    PullRequest,
    Reaction,
    Repository,
    Review,
    ReviewComment,
    State,
    Token,
    User,
    now_iso,
)

__all__ = [
    "CheckRun",
    "Comment",
    "Installation",
    "Issue",
    "PullRequest",
    "Reaction",
    "Repository",
    "Review",
    "ReviewComment",
    "State",
    "Token",
    "User",
    "now_iso",
]
