"""schemathesis against the OpenAPI document ``/api/v1`` publishes, over real HTTP to a running
gaffer: no 5xx, every answer conforms to the document (status codes, content types, bodies),
authentication is enforced (``ignored_auth``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.case import Case
from schemathesis.specs.openapi.checks import positive_data_acceptance

from gaffer.settings import Settings
from tests.conftest import MASTER_KEY
from tests.support.accounts import World, seed
from tests.support.harness import Gaffer, running_gaffer
from tests.support.servers import PostgresServer, RedisServer

MAX_EXAMPLES = 12
"""Per operation and phase; the document has ~35 operations."""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def served(
    request: pytest.FixtureRequest,
    redis_server: RedisServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Gaffer, World]]:
    """A seeded gaffer (ingest only) on SQLite, then on PostgreSQL."""
    home: Path = tmp_path_factory.mktemp("schema") / "home"
    database_url = None
    if request.param == "postgres":
        postgres: PostgresServer = request.getfixturevalue("postgres_server")
        database_url = postgres.create_database()
    config = Settings(
        home=home,
        redis_url=redis_server.url,
        database_url=database_url,
        master_key=MASTER_KEY,
        project_cache_ttl_s=0.0,
    )
    with running_gaffer(config, ("ingest",)) as gaffer:
        yield gaffer, seed(gaffer.rt.db, gaffer.rt.box)


def test_api_conforms_to_its_openapi_document(served: tuple[Gaffer, World]) -> None:
    gaffer, world = served
    api = schemathesis.openapi.from_url(gaffer.url + "/api/v1/openapi.json")
    api.config.update(
        base_url=gaffer.url + "/api/v1",
        headers={"Authorization": f"Bearer {world.tokens['superadmin']}"},
    )
    # schemathesis's pytest plugin does not run on this pytest; its Python API does the same.
    failures: list[str] = []
    operations = 0
    for found in api.get_all_operations():
        operation = found.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: Case) -> None:
            # A schema-valid body may still be refused (400) for a rule the schema cannot say
            # (an engine's settings, a password policy): "positive data acceptance" is off.
            case.call_and_validate(excluded_checks=[positive_data_acceptance])

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # every operation; all failures
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 30
    assert failures == [], "\n\n".join(failures)
