"""The scripted model server, for tests: :mod:`gaffer.demo.model.server` (shipped in the package
so that ``gaffer demo --engine`` can run a real CLI offline)."""

from gaffer.demo.model.server import (
    Answer,
    Edit,
    ModelServer,
    PlanItem,
    RecordedRequest,
    Say,
    Shell,
    ToolCall,
    Usage,
    iter_sse,
)

__all__ = [
    "Answer",
    "Edit",
    "ModelServer",
    "PlanItem",
    "RecordedRequest",
    "Say",
    "Shell",
    "ToolCall",
    "Usage",
    "iter_sse",
]
