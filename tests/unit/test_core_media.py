"""check_json_media: only plain UTF-8 JSON, without a content coding, reaches the order path."""

from __future__ import annotations

import pytest

from gatekeeper.core.errors import UnsupportedMediaType
from gatekeeper.core.media import check_json_media


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "APPLICATION/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        "application/json ; Charset=Utf-8",
        'application/json; charset="utf-8"',
        'application/json; charset="utf\\-8"',  # a quoted-pair is the character itself
        "application/json; charset=utf-8;",
        "application/json;;charset=utf-8",
        "\tapplication/json\t",
    ],
)
@pytest.mark.parametrize("encodings", [[], ["identity"], ["Identity"], ["identity, identity"]])
def test_plain_json_passes(content_type: str, encodings: list[str]) -> None:
    check_json_media([content_type], encodings)


@pytest.mark.parametrize(
    "content_types",
    [
        [],
        ["application/json", "application/json"],
        ["application/json; charset=utf-7"],
        ["application/json; charset=unicode_escape"],
        ["application/json; charset=utf-16"],
        ["application/json; charset=utf8"],
        ["application/json; charset=utf-8; charset=utf-8"],
        ["application/json; charset=utf-8; charset=utf-7"],
        ["application/json; charset=utf-8, text/plain"],
        ["application/json; charset=utf-8 x"],
        ['application/json; charset="utf-8'],
        ["application/json; charset="],
        ["application/json; boundary=x"],
        ["application/json; q=1"],
        ["application/json+x"],
        ["application/jsonp"],
        ["application/vnd.api+json"],
        ["text/json"],
        ["text/plain"],
        ["application/x-www-form-urlencoded"],
        ["multipart/form-data; boundary=x"],
        ["application / json"],
        ["application/json\u00a0"],
        [""],
    ],
)
def test_anything_else_is_unsupported(content_types: list[str]) -> None:
    with pytest.raises(UnsupportedMediaType) as raised:
        check_json_media(content_types, [])
    assert raised.value.status == 415
    assert raised.value.code == "unsupported_media_type"


@pytest.mark.parametrize(
    "encodings",
    [["gzip"], ["deflate"], ["br"], ["zstd"], ["identity, gzip"], ["identity", "gzip"], [""]],
)
def test_content_codings_are_unsupported(encodings: list[str]) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_json_media(["application/json"], encodings)
