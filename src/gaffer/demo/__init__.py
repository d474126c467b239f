"""``gaffer demo``: the main job end to end on a local repository, with no configuration."""

from pathlib import Path

DEFAULT_FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "github-webhooks"
"""The GitHub payload fixtures of a source checkout (``tests/fixtures/github-webhooks``)."""
