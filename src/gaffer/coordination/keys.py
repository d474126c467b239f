"""Redis key names: ``gaffer:`` then one segment per part, customer strings encoded.

A delivery id, project name or repository comes from outside; if it could contain ``:`` two
different tuples of parts could produce the same key (``a:b`` + ``c`` vs ``a`` + ``b:c``).
Each part is therefore percent-encoded for ``%`` and ``:`` (and whitespace), which is reversible
and leaves ordinary ids readable.
"""

from __future__ import annotations

from urllib.parse import quote

PREFIX = "gaffer"


def encode_part(part: str | int) -> str:
    """Encode one key segment so that it contains no ``:``."""
    return quote(str(part), safe="!$&'()*+,;=@-._~/")


def key(*parts: str | int) -> str:
    """``gaffer:<part>:<part>...`` with every part encoded by :func:`encode_part`."""
    return ":".join([PREFIX, *(encode_part(p) for p in parts)])
