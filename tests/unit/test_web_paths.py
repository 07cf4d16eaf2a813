"""validate_target: encoded '/' only in reads outside /accounts, no ``__`` segment; the rest as
before. validate_headers: Connection and Transfer-Encoding (issue 8, items 6, 7 and 10)."""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote

import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from gatekeeper.errors import InvalidPath
from gatekeeper.request_paths import (
    InvalidConnectionHeader,
    InvalidTransferEncoding,
    ReservedPath,
    _is_reserved,
    validate_connection,
    validate_headers,
    validate_target,
)

INSTRUMENT_READS = [
    "/instruments/futures/%2FESZ6",
    "/instruments/future-options/.%2FESZ6%20E3AZ6%20261218P6000",
    "/instruments/cryptocurrencies/BTC%2FUSD",
    "/instruments/cryptocurrencies/btc%2fusd",
    "/instruments/equity-options/SPXW%20%20261218P01000000",
    "/option-chains/BRK%2FB/nested",
    "/customers/me/accounts/5WT00001%2Fx",  # a read outside the /accounts prefix
]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", INSTRUMENT_READS)
def test_reads_may_carry_an_encoded_slash_and_are_returned_as_sent(path: str, method: str) -> None:
    assert validate_target(path + "?a=1", method=method) == (path, "a=1")


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS", "get", "PURGE"])
@pytest.mark.parametrize(
    "path", ["/instruments/futures/%2FESZ6", "/instruments/cryptocurrencies/BTC%2FUSD"]
)
def test_an_encoded_slash_is_refused_on_anything_but_a_read(path: str, method: str) -> None:
    with pytest.raises(InvalidPath, match="encoded '/'"):
        validate_target(path, method=method)


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/5WT00001/orders%2F1",
        "/accounts/5WT00001%2Forders",
        "/Accounts/5WT00001/positions%2Fx",
        "/ACCOUNTS/5WT00001/orders/%2F",
        "/accounts%2f5WT00001/orders",  # the prefix itself hidden in the first segment
        "/accounts%2F",
        "/%2Faccounts/5WT00001/orders",
        "/%2F%2Fevil.example/x",
        "/instr%75ments/futures/%2FESZ6",  # first segment not a plain name
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
def test_an_encoded_slash_is_refused_under_accounts_or_a_disguised_prefix(
    path: str, method: str
) -> None:
    with pytest.raises(InvalidPath):
        validate_target(path, method=method)


@pytest.mark.parametrize(
    "path",
    [
        "/instruments/..%2F..%2Faccounts/5WT00001/orders",
        "/instruments/futures/..%2Fx",
        "/instruments/x%2F..",
        "/instruments/x%2F..%2F",
    ],
)
def test_an_encoded_slash_cannot_build_a_dot_dot_segment(path: str) -> None:
    with pytest.raises(InvalidPath, match=r"'\.\.'"):
        validate_target(path, method="GET")


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize(
    "path",
    [
        "/instruments/futures/%2EESZ6",
        "/instruments/future-options/%2e%2FESZ6",
        "/instruments/%5Cx",
        "/instruments/x%5cy",
        "/instruments/futures/ESZ6%00",
        "/instruments/cryptocurrencies/BTC%2FUSD%00",
    ],
)
def test_encoded_backslash_dot_and_nul_stay_refused_everywhere(path: str, method: str) -> None:
    with pytest.raises(InvalidPath, match="encoded"):
        validate_target(path, method=method)


@pytest.mark.parametrize(
    ("target", "method"),
    [
        ("/accounts/5WT00001/orders", "POST"),
        ("/accounts/5WT00001/positions?symbol=SPY%20%20%20261218C00600000", "GET"),
        ("/instruments/equity-options/SPY%20%20%20261218C00600000", "DELETE"),
        ("/market-data/by-type?future=%2FESZ6&future-option=.%2FESZ6", "GET"),
    ],
)
def test_targets_without_an_encoded_slash_are_unchanged(target: str, method: str) -> None:
    path, _, query = target.partition("?")
    assert validate_target(target, method=method) == (path, query)


@pytest.mark.parametrize(
    "target", ["/accounts/../x", "//evil/x", "/@evil/x", "/a\\b", "/a#b", "x/y", "/a b"]
)
def test_other_ambiguous_targets_stay_refused_for_reads(target: str) -> None:
    with pytest.raises(InvalidPath):
        validate_target(target, method="GET")


@pytest.mark.parametrize(
    "path",
    [
        "/__paper/accounts/5WT00001/cash",
        "/__paper",
        "/%5F%5Fpaper/quotes",
        "/_%5fpaper/quotes",
        "/%255F%255Fpaper/quotes",
        "/%EF%BC%BF%EF%BC%BFpaper/quotes",
        "/__anything",
        "/;/__paper/quotes",
        "/x/__paper",
    ],
)
@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_a_double_underscore_segment_is_never_forwarded(path: str, method: str) -> None:
    with pytest.raises(ReservedPath):
        validate_target(path, method=method)


@pytest.mark.parametrize("path", ["/_status", "/instruments/_x_", "/customers/me__"])
def test_underscores_elsewhere_pass(path: str) -> None:
    assert validate_target(path, method="GET") == (path, "")


@pytest.mark.parametrize(
    "values",
    [
        ["Authorization"],
        ["close, authorization"],
        ["keep-alive", "Content-Type"],
        [" Content-Length "],
        ["Accept-Version,TE"],
        ["User-Agent"],
        ["Cookie"],
        ["Content-Encoding"],
        ["X-Tastyworks-OTP"],
    ],
)
def test_connection_naming_a_needed_field_is_refused(values: list[str]) -> None:
    with pytest.raises(InvalidConnectionHeader):
        validate_connection(values)


@pytest.mark.parametrize(
    "values", [[], ["keep-alive"], ["close"], ["Keep-Alive, TE"], ["Upgrade"], ["X-Private-Hop"]]
)
def test_connection_options_and_other_fields_pass(values: list[str]) -> None:
    validate_connection(values)


def _headers(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


@pytest.mark.parametrize(
    "pairs",
    [
        (("Transfer-Encoding", "gzip, chunked"),),
        (("Transfer-Encoding", "chunked, chunked"),),
        (("Transfer-Encoding", "identity"),),
        (("Transfer-Encoding", "gzip"), ("Transfer-Encoding", "chunked")),
    ],
)
def test_transfer_codings_but_chunked_are_refused(pairs: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(InvalidTransferEncoding):
        validate_headers(_headers(*pairs))


@pytest.mark.parametrize(
    "pairs",
    [(), (("Transfer-Encoding", "chunked"),), (("Transfer-Encoding", "Chunked"),)],
)
def test_chunked_or_nothing_passes(pairs: tuple[tuple[str, str], ...]) -> None:
    validate_headers(_headers(*pairs))


def test_validate_headers_checks_connection_too() -> None:
    with pytest.raises(InvalidConnectionHeader):
        validate_headers(_headers(("Connection", "close, Authorization")))


@pytest.mark.parametrize(
    "segment",
    ["", "accounts", "__paper", " __x", "_x_", "__", "%5F%5Fx", "%255F_", "\uff3f\uff3fx", "a%2Fb"],
)
def test_a_plain_segment_is_judged_as_the_full_decoding_judges_it(segment: str) -> None:
    """The shortcut for segments with nothing to decode (ASCII, no '%') agrees with decoding
    three times and NFKC-folding."""
    decoded = segment
    for _ in range(3):
        decoded = unquote(decoded)
    expected = unicodedata.normalize("NFKC", decoded).strip().startswith("__")
    assert _is_reserved(segment) is expected
