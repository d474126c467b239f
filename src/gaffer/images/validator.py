"""A pure validator of the image reference grammar: ``[host[:port]/]path[:tag][@digest]``.

The grammar is that of the reference implementation (``github.com/distribution/reference``,
``regexp.go`` and ``normalize.go``): a name is an optional domain (a host of DNS labels or a
bracketed IPv6 address, with an optional port) followed by ``/``-separated lowercase path
components; a tag is ``[\\w][\\w.-]{0,127}``; a digest is ``algorithm:hex``, and for ``sha256``
exactly 64 lowercase hex digits. A name is at most 255 characters (``NameTotalLengthMax``).

:func:`parse_image_reference` does no I/O: it is the check the API and the CLI run before
anything is written (issue 13: "a malformed reference is rejected at once with 400").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gaffer.errors import UserError

NAME_MAX_CHARS = 255
"""The reference implementation's limit on the name part (``NameTotalLengthMax``)."""
TAG_MAX_CHARS = 128
REFERENCE_MAX_CHARS = 512
"""A generous bound on the whole reference (name + tag + digest)."""

_PATH_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\]")
_PORT = re.compile(r"[0-9]{1,5}")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_ALGORITHM = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*")
_HEX = re.compile(r"[0-9a-f]{32,}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class InvalidImageReferenceError(UserError, ValueError):
    """A string that is not a valid image reference; the message says what is wrong."""


@dataclass(frozen=True)
class ImageReference:
    """A parsed reference. ``registry`` is ``host[:port]`` or None (the engine's default
    registry); ``repository`` the path without the registry; ``name`` both together, as
    written (``127.0.0.1:5000/team/worker``)."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """``registry/repository`` (or just the repository)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def pull_tag(self) -> str:
        """The tag to pull when there is no digest (``latest`` when none is written)."""
        return self.tag or "latest"

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def _bad(reference: str, why: str) -> InvalidImageReferenceError:
    return InvalidImageReferenceError(
        f"invalid image reference {reference!r}: {why} (expected [host[:port]/]path[:tag]"
        "[@sha256:<hex>] with a lowercase path, e.g. localhost/gaffer-worker:latest)"
    )


def _looks_like_domain(first: str) -> bool:
    # normalize.go: the first component is a domain when it has a '.' or a ':' or is
    # 'localhost' (or has an uppercase letter, which a path component may not have).
    return "." in first or ":" in first or first == "localhost" or first.lower() != first


def _check_domain(reference: str, domain: str) -> None:
    host, port = domain, None
    if domain.startswith("["):
        end = domain.find("]")
        if end == -1:
            raise _bad(reference, f"registry host {domain!r} has an unclosed '['")
        host, rest = domain[: end + 1], domain[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise _bad(reference, f"registry {domain!r}: expected ':port' after the host")
            port = rest[1:]
    elif ":" in domain:
        host, port = domain.split(":", 1)
    if not _HOST.fullmatch(host):
        raise _bad(reference, f"registry host {host!r} is not a valid host name")
    if port is not None and (not _PORT.fullmatch(port) or not 0 < int(port) < 65536):
        raise _bad(reference, f"registry port {port!r} is not a port number (1-65535)")


def parse_image_reference(reference: str) -> ImageReference:
    """Parse ``reference`` into an :class:`ImageReference`; pure, no I/O.

    Accepted: ``name``, ``name:tag``, ``name@sha256:<64 hex>``, ``name:tag@sha256:<64 hex>``,
    where a name is an optional ``host[:port]/`` then lowercase path components
    (``localhost/gaffer-worker:latest``, ``127.0.0.1:5000/team/worker@sha256:...``).

    Raises :class:`InvalidImageReferenceError` naming the part that is wrong: empty or with
    whitespace, over :data:`REFERENCE_MAX_CHARS`, a bad registry host or port, an empty or
    uppercase path component, a bad or over-long tag, a bad digest, a name over
    :data:`NAME_MAX_CHARS` characters.
    """
    if not reference:
        raise _bad(reference, "it is empty")
    if any(c.isspace() for c in reference) or not reference.isprintable():
        raise _bad(reference, "it contains whitespace or control characters")
    if len(reference) > REFERENCE_MAX_CHARS:
        raise _bad(reference, f"it is longer than {REFERENCE_MAX_CHARS} characters")
    rest, digest = reference, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        algorithm, _, hexpart = digest.partition(":")
        if not hexpart or not _ALGORITHM.fullmatch(algorithm):
            raise _bad(reference, f"digest {digest!r} is not of the form sha256:<hex>")
        if algorithm == "sha256" and not _SHA256.fullmatch(hexpart):
            raise _bad(reference, "a sha256 digest is exactly 64 lowercase hex digits")
        if not _HEX.fullmatch(hexpart):
            raise _bad(reference, f"digest {digest!r}: the hex part is not lowercase hex")
    if not rest:
        raise _bad(reference, "the name is empty")
    components = rest.split("/")
    registry = None
    if len(components) > 1 and _looks_like_domain(components[0]):
        registry = components.pop(0)
        _check_domain(reference, registry)
    tag = None
    last = components[-1]
    if ":" in last:
        last, tag = last.split(":", 1)
        components[-1] = last
        if not tag:
            raise _bad(reference, "the tag after ':' is empty")
        if len(tag) > TAG_MAX_CHARS:
            raise _bad(reference, f"the tag is longer than {TAG_MAX_CHARS} characters")
        if not _TAG.fullmatch(tag):
            raise _bad(
                reference,
                f"tag {tag!r} may hold only letters, digits, '_', '.', '-' "
                "and may not start with '.' or '-'",
            )
    for component in components:
        if not component:
            raise _bad(reference, "a path component is empty (a '//' or a trailing '/')")
        if component.lower() != component and _PATH_COMPONENT.fullmatch(component.lower()):
            raise _bad(reference, f"path component {component!r} must be lowercase")
        if not _PATH_COMPONENT.fullmatch(component):
            raise _bad(
                reference,
                f"path component {component!r} must be lowercase letters and digits "
                "separated by '.', '_', '__' or '-'",
            )
    repository = "/".join(components)
    parsed = ImageReference(registry, repository, tag, digest)
    if len(parsed.name) > NAME_MAX_CHARS:
        raise _bad(reference, f"the name is longer than {NAME_MAX_CHARS} characters")
    return parsed
