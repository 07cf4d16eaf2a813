"""Request validation: the proxy only ever forwards a plain origin-relative path, and never
forwards a request it would have to change.

The upstream origin comes from configuration. The request target must be an origin-form path
("/…") that cannot be read as another host (``//host``, absolute-form ``http://host/…``,
``@host``) or as another path after normalisation (dot-segments, encoded ``\\``, ``.``, NUL).
What is validated here is exactly what is forwarded, byte for byte.

One exception for encoded ``/`` (``%2F``): TastyTrade's instrument look-ups put symbols that
contain ``/`` in one path segment (``/instruments/cryptocurrencies/BTC%2FUSD``, a future
option ``.%2FESZ6%20E3AZ6%20261218P6000``), so a read (GET or HEAD) may carry ``%2F`` when
its first segment is a plain name other than ``accounts`` and no segment, once ``%2F`` is
decoded, is ``..``. A broker that decodes ``%2F`` before routing then still sees a read under
the same first segment. Encoded ``/`` stays refused on every other method and under
``/accounts`` (the order routes); encoded ``\\``, ``.`` and NUL are refused everywhere.

A path with a segment starting with ``__`` (however encoded or spelled with full-width
look-alikes) is 404 here: the first segment is where a broker stand-in keeps its controls (the
paper broker's ``/__paper/``), any other in case a server drops what precedes it (``/;/__x``
read as ``//__x``), and TastyTrade has no such route.

A proxy drops every field named in ``Connection``, so ``Connection: Authorization`` would
forward an order without the credential its account state was fetched with. ``Connection``
must not name a field the gatekeeper reads or a credential (:data:`NEEDED_FIELDS`): such a
request is refused (400), never stripped. Other fields named there are dropped, as RFC 9110
§7.6.1 says. ``Transfer-Encoding`` may only be ``chunked``: a transfer coding such as gzip
would have to be undone here to keep the body's meaning, and the proxy never changes a body.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import unquote

from multidict import CIMultiDictProxy

from gatekeeper.errors import BadRequest, InvalidPath, NotFound

# Percent-encodings of '\', '.', and NUL, in either case: refused on every request.
_ENCODED_SEPARATOR = re.compile(r"%(5c|2e|00)", re.IGNORECASE)
_ENCODED_SLASH = re.compile(r"%2f", re.IGNORECASE)
_ALLOWED = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$")
# Methods that only read: the only ones that may name a symbol with an encoded '/'.
_READ_METHODS = frozenset({"GET", "HEAD"})
# A first segment under which an encoded '/' may appear: a plain name, no percent-encoding.
_PLAIN_SEGMENT = re.compile(r"^[A-Za-z0-9\-_]+$")
# End-to-end fields that Connection must not name: credentials, and what the gatekeeper reads
# to fetch the account state and to interpret the body it checks.
NEEDED_FIELDS = frozenset(
    {
        "authorization",
        "cookie",
        "x-tastyworks-otp",
        "accept-version",
        "user-agent",
        "content-type",
        "content-encoding",
        "content-length",
    }
)


class InvalidConnectionHeader(BadRequest):
    """``Connection`` names a field the request needs end to end: forwarding without it would
    change the request (a credential, the body's type), so the request is refused instead."""

    code = "invalid_connection_header"


class InvalidTransferEncoding(BadRequest):
    """A transfer coding other than chunked: forwarding the bytes as they are would change the
    body, so the request is refused."""

    code = "invalid_transfer_encoding"


class ReservedPath(NotFound):
    """A path under a prefix the proxy never forwards (a broker stand-in's controls)."""


def validate_connection(values: Sequence[str]) -> None:
    """Raise InvalidConnectionHeader if ``Connection`` (all its ``values``) names one of
    :data:`NEEDED_FIELDS`."""
    for value in values:
        for token in value.split(","):
            if token.strip().lower() in NEEDED_FIELDS:
                raise InvalidConnectionHeader(
                    "the Connection header names a field this request needs end to end"
                    f" ({token.strip()[:40]}); the request is refused rather than forwarded"
                    " without it"
                )


def validate_headers(headers: CIMultiDictProxy[str]) -> None:
    """Refuse a request whose ``Connection`` names a needed field or whose
    ``Transfer-Encoding`` is anything but ``chunked``."""
    validate_connection(headers.getall("Connection", []))
    codings = [
        c.strip().lower() for v in headers.getall("Transfer-Encoding", []) for c in v.split(",")
    ]
    if codings and codings != ["chunked"]:
        raise InvalidTransferEncoding(
            "only the chunked transfer coding is accepted; the proxy never changes a body"
        )


def _is_reserved(segment: str) -> bool:
    """Whether a segment reads as ``__…`` once decoded (twice over) and NFKC-folded."""
    if "%" not in segment and segment.isascii():
        # Nothing to decode, and NFKC leaves ASCII as it is: most segments, on every request.
        return segment.strip().startswith("__")
    for _ in range(3):
        segment = unquote(segment)
    return unicodedata.normalize("NFKC", segment).strip().startswith("__")


def _check_encoded_slash(path: str, method: str) -> None:
    """Refuse ``%2F`` unless it is a read outside ``/accounts`` that cannot climb out."""
    if method not in _READ_METHODS:
        raise InvalidPath("request path must not contain an encoded '/' (only reads may)")
    first = path.split("/")[1]
    if not _PLAIN_SEGMENT.match(first) or first.lower() == "accounts":
        raise InvalidPath("request path must not contain an encoded '/' under this prefix")
    decoded = _ENCODED_SLASH.sub("/", path)
    if ".." in decoded.split("/"):
        raise InvalidPath("request path must not contain '..' segments, encoded or not")


def validate_target(raw_target: str, *, method: str) -> tuple[str, str]:
    """Split a raw request target into (path, query) or raise InvalidPath (ReservedPath for a
    ``__`` segment).

    ``method`` decides whether an encoded ``/`` may appear (see the module docstring).
    Returns the path and query exactly as received (still percent-encoded), ready to be
    appended to the configured upstream origin.
    """
    path, sep, query = raw_target.partition("?")
    if "#" in raw_target:
        raise InvalidPath("request target must not contain a fragment")
    if not path.startswith("/"):
        raise InvalidPath("request target must be a path starting with '/'")
    if "//" in path:
        raise InvalidPath("request path must not contain '//'")
    if "\\" in path:
        raise InvalidPath("request path must not contain '\\'")
    if _ENCODED_SEPARATOR.search(path):
        raise InvalidPath("request path must not contain encoded '\\', '.' or NUL")
    if not _ALLOWED.match(path):
        raise InvalidPath("request path contains characters that must be percent-encoded")
    segments = path.split("/")
    if any(_is_reserved(segment) for segment in segments):
        raise ReservedPath(f"No route for {method} under this prefix.")
    if any(segment in (".", "..") for segment in segments):
        raise InvalidPath("request path must not contain '.' or '..' segments")
    if segments[1].startswith("@"):
        raise InvalidPath("request path must not start with '@'")
    if _ENCODED_SLASH.search(path):
        _check_encoded_slash(path, method)
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in query):
        raise InvalidPath("query string contains control characters or spaces")
    return path, (query if sep else "")
