"""The three wire APIs engines speak, one module each, behind one interface.

Each module gives a :class:`~gaffer.gateway.protocols.base.WireProtocol`: where the engine puts
its API key, how the upstream wants the provider key, how the request names its model and
whether it streams, how usage is read from the streamed events (or a plain JSON answer), and the
provider's own error body, so an engine reads gaffer's refusals as it reads the provider's.
"""

from __future__ import annotations

from gaffer.gateway.protocols.anthropic import ANTHROPIC
from gaffer.gateway.protocols.base import RequestInfo, SSEScanner, Usage, WireProtocol
from gaffer.gateway.protocols.chat import CHAT
from gaffer.gateway.protocols.responses import RESPONSES

PROTOCOLS: dict[str, WireProtocol] = {p.name: p for p in (ANTHROPIC, RESPONSES, CHAT)}

__all__ = [
    "ANTHROPIC",
    "CHAT",
    "PROTOCOLS",
    "RESPONSES",
    "RequestInfo",
    "SSEScanner",
    "Usage",
    "WireProtocol",
]
