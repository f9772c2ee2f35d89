"""HTTP limits against a real `giftcards api` process, with raw sockets: idle, slow and
oversized requests are cut off within the configured times while other clients are answered;
401 comes before any body is read, 415 for a body that is not JSON."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from application.apikeys import ApiKeys
from infra.bootstrap import build
from infra.config import load_settings
from tests.conftest import SECRET
from tests.e2e.test_http_api import start_api

TIMEOUT = 1.0  # header, body and keep-alive timeouts of the process under test
MAX_CONNECTIONS = 40
MARGIN = 2.0  # a loaded test machine
# Cut-offs measured against TIMEOUT: alone on the machine (`make test`'s serial phase).
pytestmark = pytest.mark.serial


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    tmp = tmp_path_factory.mktemp("limits")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GIFTCARDS_", "KAFKA_"))}
    env = {**clean, "GIFTCARDS_DATA_DIR": str(tmp / "var"),
           "GIFTCARDS_DATABASE_URL": f"sqlite:///{tmp / 'giftcards.sqlite3'}",
           "GIFTCARDS_SECRET_KEY": SECRET,
           "GIFTCARDS_HTTP_HEADER_TIMEOUT_SECONDS": str(TIMEOUT),
           "GIFTCARDS_HTTP_BODY_TIMEOUT_SECONDS": str(TIMEOUT),
           "GIFTCARDS_HTTP_KEEP_ALIVE_SECONDS": str(TIMEOUT),
           "GIFTCARDS_HTTP_MAX_HEADER_BYTES": "4096",
           "GIFTCARDS_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS)}
    service = build(load_settings(env))
    key = str(ApiKeys(service.app).create(name="limits", scopes=["checkout"])["key"])
    service.close()
    process, url = start_api(env, Path(tmp / "api.log"))
    yield url, key
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert "Traceback" not in (tmp / "api.log").read_text()


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def until_closed(sock: socket.socket, limit: float = 10.0) -> tuple[float, bytes]:
    """Seconds until the server closes `sock`, and what it sent before."""
    started, got = time.monotonic(), b""
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(65536):
            got += chunk
    except ConnectionResetError:
        pass
    return time.monotonic() - started, got


def answers_quickly(url: str) -> None:
    started = time.monotonic()
    assert httpx.get(url + "/health/live", timeout=5).status_code == 200
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("sent", [
    b"",  # connects and sends nothing
    b"GET /health/li",  # half a request line
    b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # headers that never end
], ids=["idle", "half-line", "slow-headers"])
def test_a_request_whose_headers_do_not_arrive_is_cut_off(server: tuple[str, str],
                                                          sent: bytes) -> None:
    url, _ = server
    with connect(url) as sock:
        sock.sendall(sent)
        answers_quickly(url)  # others are answered meanwhile
        took, got = until_closed(sock)
    assert took < TIMEOUT + MARGIN
    assert got == b"" or got.startswith(b"HTTP/1.1 408")


def test_a_body_that_does_not_arrive_is_cut_off_with_408(server: tuple[str, str]) -> None:
    url, key = server
    with connect(url) as sock:
        sock.sendall(b"POST /v1/cards/lookup HTTP/1.1\r\nHost: x\r\n"
                     b"Authorization: Bearer " + key.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        answers_quickly(url)
        took, got = until_closed(sock)
    assert took < TIMEOUT + MARGIN
    assert got.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in got


def test_an_idle_kept_alive_connection_is_closed(server: tuple[str, str]) -> None:
    url, _ = server
    with connect(url) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        took, got = until_closed(sock)
    assert got.startswith(b"HTTP/1.1 200")
    assert took < TIMEOUT + MARGIN


def test_oversized_headers_are_refused_431_at_once(server: tuple[str, str]) -> None:
    url, _ = server
    with connect(url) as sock:
        sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536
                     + b"\r\n\r\n")
        took, got = until_closed(sock)
    assert got.startswith(b"HTTP/1.1 431") and b'"headers_too_large"' in got
    assert took < 1.0
    answers_quickly(url)


def test_connections_over_the_cap_are_closed_and_the_server_still_answers(
    server: tuple[str, str],
) -> None:
    url, _ = server
    socks = [connect(url) for _ in range(MAX_CONNECTIONS + 20)]
    try:
        closed_at_once = 0
        for sock in socks[MAX_CONNECTIONS:]:
            took, _ = until_closed(sock, limit=TIMEOUT / 2)
            closed_at_once += took < TIMEOUT / 2
        assert closed_at_once == 20
        for sock in socks[:MAX_CONNECTIONS]:  # the others, after the header timeout
            took, _ = until_closed(sock, limit=TIMEOUT + MARGIN)
            assert took < TIMEOUT + MARGIN
        answers_quickly(url)
    finally:
        for sock in socks:
            sock.close()


def test_401_comes_before_the_body_is_read_and_415_for_a_body_that_is_not_json(
    server: tuple[str, str],
) -> None:
    url, key = server
    bad = b'{"code": [[[' + b"x" * 10
    unauthenticated = httpx.post(url + "/v1/cards/lookup", content=bad,
                                 headers={"Content-Type": "application/json"})
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["code"] == "unauthenticated"
    plain = httpx.post(url + "/v1/cards/lookup", content=b"code=X",
                       headers={"Authorization": f"Bearer {key}", "Content-Type": "text/plain"})
    assert plain.status_code == 415 and plain.json()["code"] == "unsupported_media_type"
