"""Logging set-up: plain text or one JSON object per line, to stderr, with secrets redacted.

Every record passes :class:`RedactSecrets` on its way out. aiohttp's HTTP parser errors carry
the raw bytes of the request head they choke on, credentials included, and ``aiohttp.server``
logs them with a traceback at ERROR; such a record keeps its message and the error's type and
status, never its text. Every other record has the values of credential headers, bearer
tokens and our ``gk_`` tokens replaced, in its message, its traceback and its stack.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

REDACTED = "[redacted]"
# The loggers aiohttp's servers write to (parser errors, handler errors, access lines).
AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal")
# A credential header or field (Authorization, X-Broker-Authorization, Cookie,
# X-Paper-Control-Token, refresh_token, client_secret, ...) and its value, up to a quote or
# the end of the line.
_CREDENTIAL_HEADER = re.compile(
    r"(?i)\b([\w-]*(?:authorization|cookie|token|secret|password|api[-_]?key))"
    r"(['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n]*"
)
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[^\s'\",;]+")
_GK_TOKEN = re.compile(r"\bgk_[0-9a-fA-F]{8,}")
# Every text the three patterns above can change contains one of these words: one scan of a
# text without any (most lines) replaces three. An ASCII text is lowered and searched for the
# words as they are (exactly what IGNORECASE matches in ASCII, and ten times faster than it:
# a decision line took 108 µs); any other text takes the case-insensitive pattern, whose
# Unicode case folding (the Kelvin sign for k, the long s for s) lower() does not follow.
_MAYBE_SECRET = re.compile(r"(?i)authorization|cookie|token|secret|password|api[-_]?key|bearer|gk_")
_SECRET_WORDS = (
    "authorization", "cookie", "token", "secret", "password", "apikey", "api-key", "api_key",
    "bearer", "gk_",
)  # fmt: skip


def _maybe_secret(text: str) -> bool:
    if text.isascii():
        lowered = text.lower()
        return any(word in lowered for word in _SECRET_WORDS)
    return _MAYBE_SECRET.search(text) is not None


_TRACEBACKS = logging.Formatter()


def redact(text: str) -> str:
    """``text`` with credential header values, bearer tokens and ``gk_`` tokens replaced."""
    if not _maybe_secret(text):
        return text
    text = _CREDENTIAL_HEADER.sub(rf"\1\2{REDACTED}", text)
    text = _BEARER.sub(rf"\1\2{REDACTED}", text)
    return _GK_TOKEN.sub(f"gk_{REDACTED}", text)


def _http_parse_error(error: BaseException) -> bool:
    if "aiohttp" not in sys.modules:  # nothing of aiohttp's can have been raised
        return False
    from aiohttp.http_exceptions import HttpProcessingError

    return isinstance(error, HttpProcessingError)


class RedactSecrets(logging.Filter):
    """Rewrites records so that no credential reaches a handler (never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed logging call: keep it, minus its arguments
            message, record.args = str(record.msg), None
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and _http_parse_error(error):
            status = getattr(error, "code", 400)
            message += f": malformed request ({type(error).__name__}, {status})"
            record.msg, record.args = message, None
            record.exc_info, record.exc_text = None, None
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _TRACEBACKS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # as RedactSecrets left it
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    secrets_filter = RedactSecrets()
    handler.addFilter(secrets_filter)
    # Also on aiohttp's own loggers, for any handler someone attaches to them directly.
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(secrets_filter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
