"""Issue 8, item 4, in process: the filter every log record passes (``RedactSecrets``), in both
formats, on records shaped like aiohttp's and like our own."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import BadHttpMessage, InvalidHeader, LineTooLong
from hypothesis import given
from hypothesis import strategies as st

from gatekeeper.logsetup import (
    _MAYBE_SECRET,
    AIOHTTP_LOGGERS,
    JsonFormatter,
    RedactSecrets,
    _maybe_secret,
    configure_logging,
    redact,
)

TOKEN = "gk_" + "ab" * 32
SESSION = "s3ss10n-t0ken-canary"
TEXT = logging.Formatter("%(levelname)s %(name)s: %(message)s")


@pytest.fixture(params=["text", "json"])
def output(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose records go through the filter to a formatter of each kind."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if request.param == "json" else TEXT)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger(f"tests.security.redaction.{request.param}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    "error",
    [BadHttpMessage(f"Missing CR: b'X: 1\\nAuthorization: {SESSION}'"),
     InvalidHeader(f"Authorization : Bearer {SESSION}".encode()),
     LineTooLong(f"Authorization: {SESSION}".encode(), "8190")],
)  # fmt: skip
def test_a_parser_error_keeps_its_type_never_its_text(
    output: tuple[logging.Logger, io.StringIO], error: Exception
) -> None:
    logger, stream = output
    try:
        raise error
    except Exception:
        logger.exception("Error handling request from %s", "127.0.0.1")

    written = stream.getvalue()
    assert SESSION not in written
    assert "Traceback" not in written
    kind = type(error).__name__
    assert f"Error handling request from 127.0.0.1: malformed request ({kind}, 400)" in written


@pytest.mark.parametrize(
    ("message", "args"),
    [("headers %s", ({"Authorization": f"Bearer {SESSION}"},)),
     ("headers %r", ({"authorization": SESSION, "Cookie": f"s={SESSION}"},)),
     ("sent %s", (f"X-Broker-Authorization: Bearer {SESSION}\r\nHost: x",)),
     ("sent %s", (f"X-Paper-Control-Token: {SESSION}",)),
     ("token %s", (TOKEN,)),
     (f"raw Authorization: {SESSION}", ()),
     (f"auth=Bearer {SESSION}", ()),
     (f"AUTHORIZATION: {SESSION}", ()),
     (f"Api_Key={SESSION}", ()),
     (f"caf\u00e9 authorization: {SESSION}", ()),  # not ASCII: the case-folding pattern
     (f"API-\u212aEY={SESSION}", ())],  # the Kelvin sign, which IGNORECASE takes for k
)  # fmt: skip
def test_credentials_in_a_message_are_redacted(
    output: tuple[logging.Logger, io.StringIO], message: str, args: tuple[object, ...]
) -> None:
    logger, stream = output
    logger.error(message, *args)

    written = stream.getvalue()
    assert SESSION not in written
    assert TOKEN not in written
    assert "[redacted]" in written


def test_credentials_in_a_traceback_are_redacted(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = output
    try:
        raise RuntimeError(f"upstream said no to {{'Authorization': 'Bearer {SESSION}'}}")
    except RuntimeError:
        logger.exception("forwarding failed")

    written = stream.getvalue()
    assert SESSION not in written
    assert "RuntimeError" in written
    assert "forwarding failed" in written


def test_ordinary_records_are_unchanged(output: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = output
    logger.info("order %s for account %s: %s", 17, "5WT00001", "allowed")
    logger.info("malformed call %s %s", "one")  # a bug elsewhere must not raise here

    lines = stream.getvalue().splitlines()
    assert "order 17 for account 5WT00001: allowed" in lines[0]
    assert "malformed call" in lines[1]


def test_the_json_format_is_one_object_per_line() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("tests.security.redaction.json_lines")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        raise ValueError(f"Bearer {SESSION}")
    except ValueError:
        logger.exception("boom")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "boom"
    assert "ValueError: Bearer [redacted]" in entry["exc"]
    logger.removeHandler(handler)


def test_configure_logging_filters_the_handler_and_aiohttps_loggers() -> None:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    aiohttp_loggers = [logging.getLogger(name) for name in AIOHTTP_LOGGERS]
    try:
        configure_logging("INFO", "json")
        assert any(isinstance(f, RedactSecrets) for f in root.handlers[0].filters)
        for logger in aiohttp_loggers:
            assert any(isinstance(f, RedactSecrets) for f in logger.filters)
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
        for logger in aiohttp_loggers:
            logger.filters = [f for f in logger.filters if not isinstance(f, RedactSecrets)]


@given(
    st.text(
        alphabet=st.sampled_from(
            list("authorizcketsbpwdyg_-AUTHORIZCKETSBPWDYG :=\u212a\u017f\u00e9")
        ),
        max_size=40,
    )
)
def test_the_quick_screen_passes_every_text_the_pattern_would(text: str) -> None:
    # A text the screen lets through unredacted is one no redaction pattern can change.
    if not _maybe_secret(text):
        assert _MAYBE_SECRET.search(text) is None
        assert redact(text) == text
