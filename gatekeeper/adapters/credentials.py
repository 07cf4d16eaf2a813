"""Which credentials the broker let read which accounts: cached account state serves a
request only if its credential is among them (:mod:`gatekeeper.adapters.account_state`).

A credential is the ``Authorization`` value a request carries. After the broker answered a
credential with an account's state, Redis holds ``gk:cred:v1:{digest}:{account}`` for
``risk.credential_ttl_seconds``: one key per credential and account, so each confirmation
expires on its own. Nothing else about the credential is kept.

The digest is HMAC-SHA256 under a per-deployment key (``risk.credential_digest_key``, else a
random key per process), never a plain hash. A plain SHA-256 of a long random bearer token
could not be reversed, but the value is whatever a client sends (``Bearer garbage`` reaches
us too), so a plain hash would let anyone who reads Redis test guesses offline, let anyone
who writes Redis mint a confirmation for a credential of their choosing, and link one token
across deployments. With the key outside Redis, none of these work.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from gatekeeper.settings import RiskSettings

CONFIRMED_KEY = "gk:cred:v1:{digest}:{account}"


class CredentialDigests:
    """Digests of request credentials under this deployment's key."""

    def __init__(self, risk: RiskSettings) -> None:
        configured = risk.credential_digest_key
        self._key = (
            secrets.token_bytes(32)
            if configured is None
            else configured.get_secret_value().encode()
        )

    def of(self, client_headers: Mapping[str, str]) -> str | None:
        """The digest of the request's ``Authorization`` value; None when it has none."""
        value = client_headers.get("Authorization")
        if not value:
            return None
        return hmac.new(
            self._key, value.encode("utf-8", "surrogateescape"), hashlib.sha256
        ).hexdigest()


def confirmed_key(digest: str, account: str) -> str:
    """The Redis key saying the broker let the credential with ``digest`` read ``account``."""
    return CONFIRMED_KEY.format(digest=digest, account=account)
