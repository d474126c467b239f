"""Loading gaffer's Lua scripts (``coordination/lua/*.lua``) onto a redis-py client."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

LUA_DIR = Path(__file__).parent / "lua"


@cache
def lua_source(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return (LUA_DIR / f"{name}.lua").read_text()


def script(redis: aioredis.Redis, name: str) -> AsyncScript:
    """``lua/<name>.lua`` registered on ``redis`` (EVALSHA, reloaded on NOSCRIPT)."""
    return redis.register_script(lua_source(name))
