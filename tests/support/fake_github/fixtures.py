"""The ``fake_github`` fixture: import it into a test module
(``from tests.support.fake_github.fixtures import fake_github``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.fake_github.server import FakeGitHub


@pytest.fixture
def fake_github(tmp_path: Path) -> Iterator[FakeGitHub]:
    """A started fake GitHub; fails the test at teardown if any request or response broke
    GitHub's description (a test that expects a breach must clear ``violations`` itself)."""
    fake = FakeGitHub(tmp_path / "fake-github").start()
    try:
        yield fake
    finally:
        fake.stop()
    if fake.violations:
        lines = [
            f"{v.direction} {v.method} {v.path} -> {v.status}:\n{v.errors}" for v in fake.violations
        ]
        pytest.fail("fake GitHub saw contract violations:\n" + "\n\n".join(lines), pytrace=False)
