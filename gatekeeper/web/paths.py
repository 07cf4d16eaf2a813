"""Request-target validation: the proxy only ever forwards a plain origin-relative path.

The upstream origin comes from configuration. The request target must be an origin-form path
("/…") that cannot be read as another host (``//host``, absolute-form ``http://host/…``,
``@host``) or as another path after normalisation (dot-segments, encoded ``/``, ``\\``, ``.``,
NUL). What is validated here is exactly what is forwarded.
"""

from __future__ import annotations

import re

from gatekeeper.errors import InvalidPath

# Percent-encodings of '/', '\', '.', and NUL, in either case.
_ENCODED_SEPARATOR = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)
_ALLOWED = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$")


def validate_target(raw_target: str) -> tuple[str, str]:
    """Split a raw request target into (path, query) or raise InvalidPath.

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
        raise InvalidPath("request path must not contain encoded '/', '\\', '.' or NUL")
    if not _ALLOWED.match(path):
        raise InvalidPath("request path contains characters that must be percent-encoded")
    segments = path.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise InvalidPath("request path must not contain '.' or '..' segments")
    if segments[1].startswith("@"):
        raise InvalidPath("request path must not start with '@'")
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in query):
        raise InvalidPath("query string contains control characters or spaces")
    return path, (query if sep else "")
