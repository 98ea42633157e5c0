"""`rediss://` from Python against a TLS redis-server with a certificate made in the test."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import pytest

import solcache
from conftest import RedisServer, free_port


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RedisServer, int]]:
    certs = tmp_path_factory.mktemp("certs")
    cert, key = certs / "server.crt", certs / "server.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    tls_port = free_port()
    server = RedisServer(
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
    )  # fmt: skip
    with server:
        yield server, tls_port


async def test_rediss_round_trip(tls_redis: tuple[RedisServer, int]) -> None:
    _, port = tls_redis
    # `#insecure` skips verification: the test certificate is self-signed.
    async with await solcache.RedisPool.connect(f"rediss://127.0.0.1:{port}/0#insecure") as pool:
        prices = solcache.PriceCache(pool)
        await prices.set(solcache.PriceData("SOL", "187.2345", source="tls"))
        got = await prices.get("SOL")
        assert got is not None and got.source == "tls"
        assert pool.url.startswith("rediss://")


async def test_rediss_verifies_certificates_by_default(tls_redis: tuple[RedisServer, int]) -> None:
    _, port = tls_redis
    with pytest.raises(solcache.ConnectionError):
        await solcache.RedisPool.connect(f"rediss://127.0.0.1:{port}/0")


async def test_rediss_to_a_plain_port_fails_within_the_connect_timeout(
    tls_redis: tuple[RedisServer, int],
) -> None:
    server, _ = tls_redis  # its plain port waits for the end of an inline command that the
    start = time.monotonic()  # ClientHello never sends: a connect timeout, not a hang
    with pytest.raises((solcache.ConnectionError, solcache.TimeoutError)):
        await solcache.RedisPool.connect(
            f"rediss://127.0.0.1:{server.port}/0#insecure", connect_timeout_ms=1000
        )
    assert time.monotonic() - start < 1.0 + 2.0


async def test_plain_redis_to_the_tls_port_fails_within_the_connect_timeout(
    tls_redis: tuple[RedisServer, int],
) -> None:
    _, port = tls_redis  # it expects a TLS handshake, gets RESP
    start = time.monotonic()
    with pytest.raises((solcache.ConnectionError, solcache.TimeoutError)):
        await solcache.RedisPool.connect(f"redis://127.0.0.1:{port}/0", connect_timeout_ms=1000)
    assert time.monotonic() - start < 1.0 + 2.0
