"""Process-wide services, opened once per process: database (migrated), secret box, Redis.

Every entry point (``gaffer up``, the CLI commands, the demo, tests) opens a :class:`Runtime`
from one :class:`Settings` and closes it on exit, which stops the embedded Redis server when
this process started it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from gaffer.settings import Settings
from gaffer.store.crypto import SecretBox, load_master_key
from gaffer.store.db import Database
from gaffer.store.migrate import migrate

if TYPE_CHECKING:
    from gaffer.coordination.embedded import EmbeddedRedis


@dataclass
class Runtime:
    """The services of one process. ``redis_url`` is None when opened without Redis."""

    settings: Settings
    db: Database
    box: SecretBox
    redis_url: str | None
    embedded_redis: EmbeddedRedis | None = None

    def require_redis(self) -> str:
        """The Redis URL; raises RuntimeError when the runtime was opened without Redis."""
        if self.redis_url is None:
            raise RuntimeError("this command was opened without Redis")
        return self.redis_url


@contextmanager
def open_runtime(settings: Settings, *, redis: bool = True) -> Iterator[Runtime]:
    """Open the database (migrating it), load the master key, and reach Redis.

    With no ``REDIS_URL``, the private server of the data dir is joined or started (and then
    stopped when the block ends). Raises :class:`gaffer.store.crypto.MasterKeyError` and
    :class:`gaffer.coordination.embedded.RedisServerMissingError`.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    db = Database(settings)
    embedded: EmbeddedRedis | None = None
    try:
        migrate(db)
        box = SecretBox(load_master_key(settings))
        redis_url = settings.redis_url
        if redis and settings.embedded_redis:
            from gaffer.coordination.embedded import EmbeddedRedis

            embedded = EmbeddedRedis(settings)
            redis_url = embedded.start()
        yield Runtime(settings, db, box, redis_url if redis else None, embedded)
    finally:
        if embedded is not None:
            embedded.stop()
        db.dispose()
