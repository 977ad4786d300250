"""The test suite cannot reach the network: pytest-socket allows loopback connections only."""

from __future__ import annotations

import socket
import threading
import tomllib
from pathlib import Path

import pytest
from pytest_socket import SocketBlockedError, SocketConnectBlockedError

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
LOOPBACK = {"127.0.0.1", "::1", "localhost"}

# pytest-socket warns on every blocked connect; here that is the point of the test.
pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket:UserWarning")


def test_pyproject_allows_only_loopback() -> None:
    addopts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["tool"]["pytest"]["ini_options"]["addopts"]
    hosts = [a.split("=", 1)[1] for a in addopts.split() if a.startswith("--allow-hosts=")]
    assert len(hosts) == 1, addopts
    assert set(hosts[0].split(",")) == LOOPBACK


def test_active_config_allows_only_loopback(pytestconfig: pytest.Config) -> None:
    assert set(pytestconfig.getoption("--allow-hosts").split(",")) == LOOPBACK


@pytest.mark.parametrize(
    ("family", "address"),
    [
        (socket.AF_INET, ("10.255.255.1", 80)),
        (socket.AF_INET, ("93.184.216.34", 443)),
        (socket.AF_INET6, ("2001:db8::1", 80)),
    ],
    ids=["private-v4", "public-v4", "v6"],
)
def test_connecting_outside_is_blocked(family: socket.AddressFamily, address: tuple[str, int]) -> None:
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        pytest.skip(f"no {family.name} support here")
    sock.settimeout(0.5)
    with sock, pytest.raises((SocketBlockedError, SocketConnectBlockedError)) as exc:
        sock.connect(address)
    assert isinstance(exc.value, RuntimeError)
    assert address[0] in str(exc.value)


def test_create_connection_outside_is_blocked() -> None:
    with pytest.raises((SocketBlockedError, SocketConnectBlockedError)):
        socket.create_connection(("10.255.255.1", 80), timeout=0.5)


def test_loopback_server_works() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        received: list[bytes] = []

        def serve() -> None:
            conn, _ = server.accept()
            with conn:
                data = conn.recv(16)
                received.append(data)
                conn.sendall(data.upper())

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        with socket.create_connection(("127.0.0.1", port), timeout=2) as client:
            client.sendall(b"ping")
            assert client.recv(16) == b"PING"
        thread.join(timeout=2)
    assert received == [b"ping"]
