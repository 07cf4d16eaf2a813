"""What an order body may be declared as: ``application/json`` in UTF-8, not content-coded.

The gatekeeper checks the body as UTF-8 JSON. A broker that honours a declared charset
(``utf-7``, ``utf-16``, ``unicode_escape``…) or decompresses a ``Content-Encoding`` would read
other characters from the same bytes, e.g. 1,000 shares where 1 was checked. So on checked
routes the only accepted declarations are ``Content-Type: application/json`` with no
parameter or ``charset=utf-8`` (names and values case-insensitive, optional whitespace and a
quoted value as RFC 9110 §8.3 allows), exactly once, and no ``Content-Encoding`` other than
``identity``. Anything else is :class:`UnsupportedMediaType` (415), never forwarded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from gatekeeper.core.errors import UnsupportedMediaType

_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[\t \x21\x23-\x5b\x5d-\x7e]|\\[\t \x21-\x7e])*"'
_PARAMETER = rf"[ \t]*;[ \t]*(?:({_TCHARS})=({_TCHARS}|{_QUOTED}))?"
_MEDIA_TYPE = re.compile(rf"[ \t]*({_TCHARS})/({_TCHARS})((?:{_PARAMETER})*)[ \t]*")
_PARAMETERS = re.compile(_PARAMETER)
_QUOTED_PAIR = re.compile(r"\\(.)")


def _unquote(value: str) -> str:
    if value.startswith('"'):
        return _QUOTED_PAIR.sub(r"\1", value[1:-1])
    return value


def check_json_media(content_types: Sequence[str], content_encodings: Sequence[str]) -> None:
    """Raise :class:`UnsupportedMediaType` unless the headers declare plain UTF-8 JSON.

    ``content_types`` and ``content_encodings`` are every value of the request's
    ``Content-Type`` and ``Content-Encoding`` headers, in order.
    """
    if len(content_types) != 1:
        raise UnsupportedMediaType(
            "unsupported media type: send exactly one Content-Type: application/json"
        )
    match = _MEDIA_TYPE.fullmatch(content_types[0])
    if match is None or (match[1].lower(), match[2].lower()) != ("application", "json"):
        raise UnsupportedMediaType("unsupported media type: orders must be application/json")
    names = []
    for parameter in _PARAMETERS.finditer(match[3]):
        name, value = parameter[1], parameter[2]
        if name is None:
            continue  # an empty parameter (";;"), allowed by RFC 9110
        names.append(name.lower())
        if name.lower() != "charset" or _unquote(value).lower() != "utf-8":
            raise UnsupportedMediaType(
                "unsupported media type: application/json takes no parameter but charset=utf-8"
            )
    if len(names) > 1:
        raise UnsupportedMediaType("unsupported media type: charset given more than once")
    for value in content_encodings:
        codings = [coding.strip().lower() for coding in value.split(",")]
        if any(coding != "identity" for coding in codings):
            raise UnsupportedMediaType(
                "unsupported media type: order bodies must not be content-encoded"
            )
