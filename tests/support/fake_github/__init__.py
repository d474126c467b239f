"""A local fake GitHub held to GitHub's published OpenAPI description (see server.py)."""

from tests.support.fake_github.server import FakeGitHub

__all__ = ["FakeGitHub"]
