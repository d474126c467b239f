"""Image references: the ``[registry[:port]/]path[:tag][@digest]`` strings an engine pulls.

:func:`validate_image_reference` checks a reference against the grammar of the reference
implementation (:mod:`gaffer.images.validator`), so a typo in ``GAFFER_WORKER_IMAGE`` is refused
when the settings are read, before anything is written or any run is started, instead of
surfacing later as a failed pull.
"""

from __future__ import annotations

from gaffer.images.validator import (
    NAME_MAX_CHARS,
    ImageReference,
    InvalidImageReferenceError,
    parse_image_reference,
)


def validate_image_reference(reference: str) -> str:
    """Return ``reference`` unchanged if it is a valid image reference.

    Raises :class:`InvalidImageReferenceError` (see :func:`parse_image_reference`).
    """
    parse_image_reference(reference)
    return reference


__all__ = [
    "NAME_MAX_CHARS",
    "ImageReference",
    "InvalidImageReferenceError",
    "parse_image_reference",
    "validate_image_reference",
]
