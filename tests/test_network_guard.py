"""The test-wide network guard (tests/conftest.py): nothing leaves the machine."""

import re
import socket
import time

import pytest
import requests
from pytest_socket import SocketConnectBlockedError

from tests.conftest import NetworkGuardError, NetworkLog, network_log_check

# pytest-socket also warns for each connection it refuses; here they are the point.
pytestmark = pytest.mark.filterwarnings("ignore:A test tried to use socket")


@pytest.fixture
def listener():
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


@pytest.mark.parametrize(
    ("family", "address"),
    [
        (socket.AF_INET, ("10.0.0.1", 443)),
        (socket.AF_INET, ("93.184.215.14", 443)),
        (socket.AF_INET6, ("2001:db8::1", 443, 0, 0)),
    ],
    ids=["private", "public", "ipv6"],
)
def test_a_connection_beyond_loopback_fails_at_once(network_guard, family, address):
    started = time.monotonic()
    with (
        socket.socket(family, socket.SOCK_STREAM) as sock,
        pytest.raises(SocketConnectBlockedError, match=re.escape(address[0])),
    ):
        sock.connect(address)

    assert time.monotonic() - started < 0.5
    assert network_guard.hosts() == [address[0]]
    assert len(network_guard.take_blocked()) == 1


def test_connect_ex_is_guarded_too(network_guard):
    with socket.socket() as sock, pytest.raises(SocketConnectBlockedError):
        sock.connect_ex(("10.0.0.1", 443))
    assert network_guard.take_blocked()


def test_requests_to_an_outside_address_fail_before_any_packet(network_guard):
    with pytest.raises(SocketConnectBlockedError):
        requests.get("https://93.184.215.14/", timeout=5)
    assert network_guard.take_blocked()


def test_loopback_works(network_guard, listener):
    port = listener.getsockname()[1]

    with socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    with socket.create_connection(("localhost", port), timeout=2):
        pass

    assert network_guard.hosts()[0] == "127.0.0.1" and not network_guard.blocked


def test_ipv6_loopback_works(network_guard):
    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    with server, socket.create_connection(("::1", server.getsockname()[1]), timeout=2):
        pass
    assert not network_guard.blocked


def test_unix_sockets_work(tmp_path, network_guard):
    path = str(tmp_path / "s")
    with socket.socket(socket.AF_UNIX) as server, socket.socket(socket.AF_UNIX) as client:
        server.bind(path)
        server.listen()
        client.connect(path)
    assert not network_guard.blocked


def test_a_dns_lookup_of_a_name_is_refused_but_addresses_and_localhost_resolve(network_guard):
    with pytest.raises(NetworkGuardError, match=re.escape("hooks.example.test")):
        socket.getaddrinfo("hooks.example.test", 443)

    assert socket.getaddrinfo("127.0.0.1", 80)[0][4][0] == "127.0.0.1"
    assert socket.getaddrinfo("localhost", 80)
    assert network_guard.take_blocked() == [
        'A test tried to look up "hooks.example.test" in the DNS.'
    ]


def test_a_refused_attempt_fails_the_test_even_when_the_code_swallowed_it():
    log = NetworkLog(blocked=['A test tried to use socket.socket.connect() with host "10.0.0.1"'])

    with pytest.raises(pytest.fail.Exception, match="tried to leave the machine"):
        network_log_check(log)
    network_log_check(NetworkLog())  # nothing refused: nothing to say


def test_the_fake_resolver_maps_made_up_names_and_refuses_the_rest(fake_dns, listener):
    fake_dns.add("hooks.example.test", "127.0.0.1")
    port = listener.getsockname()[1]

    with socket.create_connection(("hooks.example.test", port), timeout=2):
        pass
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("unknown.example.test", 443)
    assert fake_dns.lookups == ["hooks.example.test", "unknown.example.test"]
