"""HTTPS on the proxy listener (gatekeeper.tls): the order path over it, certificates checked
at start-up with one line each, and `gatekeeper demo --tls` with its local authority."""

from __future__ import annotations

import asyncio
import re
import ssl
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gatekeeper.settings import ProxySettings, SettingsError, load_settings
from gatekeeper.tls import TlsSetupError, ensure_local_certificates, server_context
from tests.e2e.tls_gate import start_tls_gatekeeper
from tests.fixtures.paper import PaperBroker
from tests.processes import ROOT, base_environment, free_ports, paper_oauth_header

TOO_BIG = {
    "order-type": "Limit",
    "time-in-force": "Day",
    "price": "150.00",
    "price-effect": "Debit",
    "legs": [
        {"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open", "quantity": 1000}
    ],
}


def trusting(authority: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(authority))


async def test_proxy_serves_the_order_path_over_https(
    paper_broker: PaperBroker, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    async with start_tls_gatekeeper(
        paper_broker.url, database_url, redis_url, tmp_path / "tls"
    ) as tls_gate:
        url = tls_gate.gate.proxy_url
        assert url.startswith("https://127.0.0.1:")
        headers = await paper_oauth_header(paper_broker.url)
        orders = f"{url}/accounts/{paper_broker.account_number}/orders"
        connector = aiohttp.TCPConnector(ssl=trusting(tls_gate.authority))
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.get(f"{url}/customers/me/accounts", headers=headers) as response:
                assert response.status == 200  # passed through to the broker
            async with session.post(orders, json=TOO_BIG, headers=headers) as response:
                body = await response.json()
            assert response.status == 422
            assert body["error"]["code"] == "risk_check_failed"
        assert paper_broker.book.received_orders() == []
        # A client that does not trust the authority is refused by its own TLS check.
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await session.get(f"{url}/customers/me/accounts", headers=headers)
        # Plain HTTP to the HTTPS listener gets no HTTP answer.
        plain = url.replace("https://", "http://")
        async with aiohttp.ClientSession() as session:
            with pytest.raises(aiohttp.ClientError):
                await session.get(f"{plain}/customers/me/accounts", headers=headers)


def test_certificate_and_key_go_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEKEEPER_PROXY__TLS_CERTIFICATE", str(tmp_path / "server.pem"))
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "tls_certificate and tls_key go together" in str(caught.value)
    both = ProxySettings(tls_certificate=tmp_path / "a.pem", tls_key=tmp_path / "b.pem")
    assert both.tls_key == tmp_path / "b.pem"


async def run_serve(env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatekeeper.cli", "serve",
        cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, stderr.decode()


async def test_serve_refuses_an_unusable_certificate_in_one_line(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    files = ensure_local_certificates(tmp_path / "tls")
    env = base_environment(database_url, redis_url)
    proxy_port, admin_port = free_ports(2)
    env["GATEKEEPER_PROXY__PORT"] = str(proxy_port)
    env["GATEKEEPER_ADMIN__PORT"] = str(admin_port)
    cases = {
        (tmp_path / "missing.pem", files.key): (
            f"error: proxy.tls_certificate {tmp_path / 'missing.pem'} cannot be read"
            " (No such file or directory)"
        ),
        (files.authority, files.key): (
            f"error: proxy.tls_key {files.key} is not the PEM private key of {files.authority}"
        ),
        (files.key, files.key): (
            f"error: proxy.tls_certificate {files.key} is not a PEM certificate"
        ),
    }
    for (certificate, key), expected in cases.items():
        code, stderr = await run_serve(
            {
                **env,
                "GATEKEEPER_PROXY__TLS_CERTIFICATE": str(certificate),
                "GATEKEEPER_PROXY__TLS_KEY": str(key),
            }
        )
        assert code == 1
        (line,) = stderr.splitlines()
        assert line.startswith(expected), line
        assert "Traceback" not in stderr


def test_an_expired_certificate_is_refused(tmp_path: Path) -> None:
    files = ensure_local_certificates(tmp_path / "tls")
    later = datetime.now(UTC) + timedelta(days=3650)
    with pytest.raises(TlsSetupError, match=r"expired on \d{4}-\d\d-\d\d"):
        server_context(files.certificate, files.key, now=later)


def _certificate_for(name: str, directory: Path) -> tuple[Path, Path]:
    """A server certificate for ``name`` signed by the local authority in ``directory``."""
    authority = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
    authority_key = serialization.load_pem_private_key(
        (directory / "ca-key.pem").read_bytes(), password=None
    )
    assert isinstance(authority_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(authority_key, hashes.SHA256())
    )
    certificate_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certificate_path, key_path


async def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, server_name: str) -> None:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    listener = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server)
    port = listener.sockets[0].getsockname()[1]
    try:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname=server_name
        )
        writer.close()
        await writer.wait_closed()
    finally:
        listener.close()
        await listener.wait_closed()


async def test_local_authority_is_kept_and_vouches_for_loopback_only(tmp_path: Path) -> None:
    directory = tmp_path / "tls"
    first = ensure_local_certificates(directory)
    first_server = first.certificate.read_bytes()
    again = ensure_local_certificates(directory)
    # Trusted once, trusted on every later start; the server certificate is new each time.
    assert again.authority.read_bytes() == first.authority.read_bytes()
    assert again.certificate.read_bytes() != first_server
    assert (directory / "ca-key.pem").stat().st_mode & 0o077 == 0
    assert again.key.stat().st_mode & 0o077 == 0
    client = trusting(again.authority)
    served = server_context(again.certificate, again.key)
    for name in ("localhost", "127.0.0.1", "::1"):
        await _handshake(served, client, name)
    # Its key signs a certificate for another name: clients refuse it (name constraints).
    rogue = server_context(*_certificate_for("bank.example", directory))
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(rogue, client, "bank.example")


async def test_demo_with_tls_prints_how_to_trust_it(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = base_environment(database_url, redis_url)
    proxy_port, admin_port, paper_port = free_ports(3)
    env.update(
        GATEKEEPER_PROXY__PORT=str(proxy_port),
        GATEKEEPER_ADMIN__PORT=str(admin_port),
        GATEKEEPER_PAPER__PORT=str(paper_port),
        GATEKEEPER_EMBEDDED__DATA_DIR=str(tmp_path / "demo"),
        GATEKEEPER_PAPER__ACCOUNTS_FILE=str(ROOT / "config" / "paper-accounts.json"),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gatekeeper.cli", "demo", "--tls",
        cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        banner = ""
        while "curl --cacert" not in banner:  # the trust note's last line
            line = await asyncio.wait_for(process.stdout.readline(), timeout=60)
            assert line, "the demo ended before its banner:\n" + banner
            banner += line.decode()
        bots = re.search(r"bots:\s+(\S+)", banner)
        authority = re.search(r"export REQUESTS_CA_BUNDLE=(\S+)", banner)
        assert bots is not None, banner
        assert authority is not None, banner
        assert bots[1] == f"https://127.0.0.1:{env['GATEKEEPER_PROXY__PORT']}"
        assert authority[1] == str(tmp_path / "demo" / "tls" / "ca.pem")
        assert f"export SSL_CERT_FILE={authority[1]}" in banner
        assert f'Tastytrade(api_base_url="127.0.0.1:{env["GATEKEEPER_PROXY__PORT"]}")' in banner
        connector = aiohttp.TCPConnector(ssl=trusting(Path(authority[1])))
        async with (
            aiohttp.ClientSession(connector=connector) as session,
            session.get(bots[1] + "/customers/me/accounts") as response,
        ):
            assert response.status == 401  # the paper broker's answer, over HTTPS
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), timeout=30)
