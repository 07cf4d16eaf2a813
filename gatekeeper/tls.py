"""HTTPS on the proxy listener, and a local certificate authority to try it with.

Some clients only speak HTTPS (``tastytrade-sdk`` prepends ``https://`` to its base URL), so
the proxy listener can serve TLS itself: ``proxy.tls_certificate`` and ``proxy.tls_key``
name PEM files, read once when the listener starts. A file that is missing, unreadable, not
PEM, encrypted, mismatched or expired stops start-up with one line naming the setting.

``gatekeeper demo --tls`` needs a certificate that a bot on the same machine trusts:
:func:`ensure_local_certificates` makes (once) a certificate authority that can only vouch
for ``localhost`` and loopback addresses (a name constraint: trusting it trusts nothing
else), and a fresh server certificate from it on every start. The bot trusts the authority's
certificate through its HTTP client's usual variable (``REQUESTS_CA_BUNDLE``, ``SSL_CERT_FILE``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gatekeeper.errors import GatekeeperError
from gatekeeper.settings import ProxySettings
from gatekeeper.web.connection_guard import ConnectionGuard, GuardedSite

log = logging.getLogger(__name__)

# A certificate expiring sooner than this is logged at WARNING when the listener starts.
EXPIRY_WARNING = timedelta(days=14)
AUTHORITY_LIFETIME = timedelta(days=3650)
# Browsers and Apple's TLS stack refuse server certificates valid for longer than 825 days.
SERVER_LIFETIME = timedelta(days=825)
# The local authority is replaced this long before it expires.
AUTHORITY_RENEWAL = timedelta(days=30)
# A closing connection waits at most this long for the client's close_notify (an idle
# pooled client never sends it; asyncio's default is 30 s).
SHUTDOWN_TIMEOUT_SECONDS = 2.0
LOCAL_HOSTS = ("localhost",)
LOCAL_ADDRESSES = ("127.0.0.1", "::1")


class TlsSetupError(GatekeeperError):
    """The proxy's TLS certificate or key cannot be used; the message says which and why."""

    code = "tls_configuration"


# -- serving ---------------------------------------------------------------------------------


def _no_password() -> bytes:
    raise TlsSetupError("encrypted")


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise TlsSetupError(f"proxy.{setting} {path} cannot be read ({reason})") from None


def server_context(certificate: Path, key: Path, now: datetime | None = None) -> ssl.SSLContext:
    """A server-side context for ``certificate`` (PEM, leaf first, then any intermediates)
    and its unencrypted PEM ``key``; TLS 1.2 and up, HTTP/1.1 only."""
    pem = _read("tls_certificate", certificate)
    _read("tls_key", key)
    try:
        leaf = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise TlsSetupError(
            f"proxy.tls_certificate {certificate} is not a PEM certificate"
        ) from None
    expires = leaf.not_valid_after_utc
    now = now or datetime.now(UTC)
    if expires <= now:
        raise TlsSetupError(
            f"proxy.tls_certificate {certificate} expired on {expires:%Y-%m-%d %H:%M} UTC"
        )
    if expires - now < EXPIRY_WARNING:
        log.warning("proxy TLS certificate %s expires on %s UTC", certificate, expires)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certificate, key, password=_no_password)
    except TlsSetupError:
        raise TlsSetupError(
            f"proxy.tls_key {key} is encrypted: give an unencrypted key readable by this user only"
        ) from None
    except ssl.SSLError as error:
        raise TlsSetupError(
            f"proxy.tls_key {key} is not the PEM private key of {certificate}"
            f" ({error.reason or 'unreadable'})"
        ) from None
    return context


def proxy_context(proxy: ProxySettings) -> ssl.SSLContext | None:
    """The proxy listener's TLS context; None when it serves plain HTTP."""
    if proxy.tls_certificate is None or proxy.tls_key is None:
        return None
    return server_context(proxy.tls_certificate, proxy.tls_key)


class TlsSite(GuardedSite):
    """A :class:`GuardedSite` serving HTTPS. The guard sees each connection once its TLS
    handshake is done; the handshake itself must finish within the request-head timeout."""

    def __init__(
        self,
        runner: web.BaseRunner,
        guard: ConnectionGuard,
        host: str,
        port: int,
        context: ssl.SSLContext,
    ) -> None:
        super().__init__(runner, guard, host, port)
        self._context = context

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await web.BaseSite.start(self)  # GuardedSite.start would listen without TLS
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard,
            self._host,
            self._port,
            backlog=self._backlog,
            ssl=self._context,
            ssl_handshake_timeout=self._guard.limits.head_timeout,
            # Closing, we wait this long for the client's close_notify, then close anyway.
            ssl_shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        )


# -- a local certificate authority (gatekeeper demo --tls) ----------------------------------


@dataclass(frozen=True)
class LocalCertificates:
    """Where the local authority's certificate (the file clients trust) and the server's
    certificate and key are."""

    authority: Path
    certificate: Path
    key: Path


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically, created with ``mode`` (keys: readable by us only)."""
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(partial, path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Gatekeeper"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usable_authority(
    certificate_path: Path, key_path: Path, now: datetime
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        certificate = x509.load_pem_x509_certificate(certificate_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return None
    if key.public_key() != certificate.public_key():
        return None
    if certificate.not_valid_after_utc - now < AUTHORITY_RENEWAL:
        return None
    return certificate, key


def _new_authority(now: datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"Gatekeeper local CA ({socket.gethostname()})")
    permitted: list[x509.GeneralName] = [x509.DNSName(host) for host in LOCAL_HOSTS]
    permitted += [
        x509.IPAddress(ipaddress.ip_network("127.0.0.0/8")),
        x509.IPAddress(ipaddress.ip_network("::1/128")),
    ]
    identifier = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + AUTHORITY_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # Only loopback names: a client that trusts this authority trusts nothing else.
        .add_extension(x509.NameConstraints(permitted, None), critical=True)
        .add_extension(identifier, critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def _new_server_certificate(
    authority: x509.Certificate,
    authority_key: ec.EllipticCurvePrivateKey,
    now: datetime,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(host) for host in LOCAL_HOSTS]
    names += [x509.IPAddress(ipaddress.ip_address(address)) for address in LOCAL_ADDRESSES]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_LIFETIME, authority.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()),
            critical=False,
        )
        .sign(authority_key, hashes.SHA256())
    )
    return certificate, key


def ensure_local_certificates(directory: Path, now: datetime | None = None) -> LocalCertificates:
    """The local authority in ``directory`` (made on first use, kept while valid, so a client
    told to trust it once keeps trusting it) and a new server certificate for ``localhost``,
    ``127.0.0.1`` and ``::1`` signed by it."""
    now = now or datetime.now(UTC)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    paths = LocalCertificates(
        authority=directory / "ca.pem",
        certificate=directory / "server.pem",
        key=directory / "server-key.pem",
    )
    authority_key_path = directory / "ca-key.pem"
    found = _usable_authority(paths.authority, authority_key_path, now)
    if found is None:
        authority, authority_key = _new_authority(now)
        _write(authority_key_path, _key_pem(authority_key), 0o600)
        _write(paths.authority, authority.public_bytes(serialization.Encoding.PEM), 0o644)
    else:
        authority, authority_key = found
    certificate, key = _new_server_certificate(authority, authority_key, now)
    _write(paths.key, _key_pem(key), 0o600)
    _write(paths.certificate, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return paths
