"""Image references: the ``[registry[:port]/]path[:tag][@digest]`` strings an engine pulls.

:func:`validate_image_reference` checks a reference against the grammar of the reference
implementation (``github.com/distribution/reference``, ``regexp.go``), so a typo in
``GAFFER_WORKER_IMAGE`` is refused when the settings are read, before anything is written or any
run is started, instead of surfacing later as a failed pull.
"""

from __future__ import annotations

import re

from gaffer.errors import UserError

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?"
)
NAME_MAX_CHARS = 255
"""The reference implementation's limit on the name part (``NameTotalLengthMax``)."""


class InvalidImageReferenceError(UserError, ValueError):
    """A string that is not a valid image reference; the message says what is wrong."""


def validate_image_reference(reference: str) -> str:
    """Return ``reference`` unchanged if it is a valid image reference.

    Accepted: ``name``, ``name:tag``, ``name@sha256:<hex>``, ``name:tag@sha256:<hex>``, where a
    name is an optional ``host[:port]/`` followed by lowercase path components
    (``localhost/gaffer-worker:latest``, ``127.0.0.1:5000/team/worker@sha256:...``).

    Raises :class:`InvalidImageReferenceError` (empty, whitespace, uppercase in the path, a bad
    tag or digest, a name over :data:`NAME_MAX_CHARS` characters).
    """
    if not reference or reference.strip() != reference:
        raise InvalidImageReferenceError(
            f"invalid image reference {reference!r}: empty or surrounded by whitespace"
        )
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        raise InvalidImageReferenceError(
            f"invalid image reference {reference!r}: expected [host[:port]/]path[:tag][@digest] "
            "with a lowercase path (e.g. localhost/gaffer-worker:latest)"
        )
    if len(match["name"]) > NAME_MAX_CHARS:
        raise InvalidImageReferenceError(
            f"invalid image reference {reference!r}: the name is longer than {NAME_MAX_CHARS} "
            "characters"
        )
    return reference
