"""Per-job Redis users: a worker gets a credential that can read its own offloaded job, nothing
else.

A worker whose job was offloaded (:mod:`gaffer.coordination.jobdata`) connects to Redis once, to
``GETDEL`` its job. Handing it gaffer's own Redis URL would hand it gaffer's Redis password, or
the whole database when there is none: the claims, leases, queue and every other job in flight.
The worker scrubs the URL from its env before the engine starts, but the engine runs code it
was told to run by the model, and a Redis reachable over TCP is reachable from the engine too.

So for each offloaded job the dispatcher creates a Redis ACL user (Redis 6+)
``gaffer-job-<job id>`` with a random password and one right: ``GETDEL`` on that job's key
(``reset ~gaffer:jobdata:<job id> -@all +getdel +select``; ``SELECT`` for a URL that names a
database). The worker's URL carries that user.
Once the key is gone (the worker read it, or its TTL ran out) the user can do nothing at all,
and :func:`sweep_job_readers`, run periodically by every dispatcher, deletes it. Users are
server-wide but keys live in one database, so each user is also recorded in the set
:data:`READERS_KEY` of the database its key is in, and a sweep looks only at those: gaffers on
other databases of the same server keep their users.

ACL users live in memory unless Redis has an ``aclfile`` and saves it: after a Redis restart a
job offloaded before it and not yet read has no user, and its worker ends the run FAILED with
``worker_job_data_redis_down``. ``GETDEL`` (the worker's read) needs Redis 6.2.

A Redis where gaffer may not create users (a managed service, an ACL without ``+acl``) makes the
offload fail with :class:`JobReaderError`, saying to grant the right or to set
``GAFFER_WORKER_REDIS_ACCESS=shared`` (the worker then gets gaffer's own URL, as before).
"""

from __future__ import annotations

import hashlib
import secrets
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import redis.asyncio as aioredis
from redis.exceptions import ResponseError, WatchError

from gaffer.coordination.jobdata import job_data_key
from gaffer.coordination.keys import key

READER_PREFIX = "gaffer-job-"
"""Names of the per-job users: ``gaffer-job-<job id>``."""
READERS_KEY = key("jobdata", "readers")
"""Set of the per-job users whose job key is (or was) in this database."""
PASSWORD_BYTES = 32


class JobReaderError(RuntimeError):
    """Redis refused to create a per-job user (no ACL rights, or a Redis without ACLs)."""


def reader_name(job_id: str) -> str:
    """The per-job user of ``job_id``."""
    return READER_PREFIX + job_id


async def grant_job_reader(redis: aioredis.Redis, job_id: str) -> tuple[str, str]:
    """Create (or reset, for a retry of the same job) the user that may ``GETDEL`` the job's
    key and nothing else; returns ``(username, password)``. A reset replaces the password, so
    an earlier attempt's credential stops working.

    Raises :class:`JobReaderError` when Redis refuses ``ACL SETUSER``; other Redis errors
    propagate. Call it after the key is written (see :func:`sweep_job_readers`).
    """
    name = reader_name(job_id)
    password = secrets.token_hex(PASSWORD_BYTES)
    # Recorded before it exists, so the set always holds every user a sweep must look at.
    await redis.sadd(READERS_KEY, name)
    try:
        await redis.acl_setuser(
            name,
            reset=True,
            enabled=True,
            # Only its SHA-256 reaches Redis (not shown by MONITOR or the slow log).
            hashed_passwords=["+" + hashlib.sha256(password.encode()).hexdigest()],
            keys=[job_data_key(job_id)],
            reset_channels=True,
            # SELECT: gaffer's Redis URL may name a database, and the worker's URL with it.
            commands=["-@all", "+getdel", "+select"],
        )
    except ResponseError as exc:
        raise JobReaderError(
            f"Redis refused to create the worker's user {name} ({exc}): give gaffer's Redis user"
            " the +acl right, or set GAFFER_WORKER_REDIS_ACCESS=shared to hand workers gaffer's"
            " own Redis URL"
        ) from exc
    return name, password


async def sweep_job_readers(redis: aioredis.Redis) -> int:
    """Delete every per-job user of this database (:data:`READERS_KEY`) whose job key is
    gone; returns how many were deleted.

    Each deletion is a transaction watching the key, so a retry that writes the key again (and
    resets the user) between the check and the delete keeps its user. Redis errors propagate.
    """
    deleted = 0
    for raw in await redis.smembers(READERS_KEY):
        name = raw.decode() if isinstance(raw, bytes) else str(raw)
        data_key = job_data_key(name.removeprefix(READER_PREFIX))
        async with redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(data_key)
                if await pipe.exists(data_key):
                    continue
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.acl_deluser(name)
                pipe.srem(READERS_KEY, name)
                await pipe.execute()
                deleted += 1
            except WatchError:
                continue  # the job was offloaded again meanwhile: its user is live
    return deleted


def with_credentials(url: str, username: str, password: str) -> str:
    """``url`` (``redis://``, ``rediss://`` or ``unix://``) with its credentials replaced by
    ``username`` and ``password``, given as query parameters, which redis-py reads for every
    scheme. Other query parameters (``db``, timeouts) are kept."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("username", "password")]
    query += [("username", username), ("password", password)]
    # Not urlunsplit: it writes ``unix:/path`` for a URL with no host.
    return f"{parts.scheme}://{netloc}{parts.path}?{urlencode(query, quote_via=quote)}"
