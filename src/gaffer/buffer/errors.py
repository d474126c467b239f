"""Which errors of a replay are worth retrying.

Retryable (issue 5, "Drainer"): the database refused or lost the connection, the pool timed
out, a serialization failure or deadlock (PostgreSQL) or a busy file (SQLite): SQLAlchemy
raises these as ``OperationalError`` (psycopg's ``SerializationFailure`` is an
``OperationalError`` too), ``InterfaceError`` or any ``DBAPIError`` whose connection was
invalidated, ``DisconnectionError`` and pool ``TimeoutError``. Redis connection errors and
timeouts are retryable as well: the rows are already written when a queue add fails, and the
replay of an existing row is a success. Everything else (an integrity error, an agent that is
no longer configured, a snapshot that does not parse) is not.
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import exc as sa_exc


def is_retryable(error: BaseException) -> bool:
    """True when replaying the same entry later may succeed (see the module docstring)."""
    if isinstance(error, sa_exc.TimeoutError | sa_exc.DisconnectionError):
        return True
    if isinstance(error, sa_exc.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return isinstance(error, RedisConnectionError | RedisTimeoutError | ConnectionError)


def describe(error: BaseException) -> str:
    """``Type: message`` on one line, at most 500 characters (for run rows and entries)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text[:500]
