"""Sending one webhook delivery to the address that was checked.

``webhook_post`` resolves the endpoint's host once, checks every address with
the policy of ``payments/integrations/addresses.py`` and connects to the first one.
There is no second DNS lookup, so a name that answers a public address to the
check and a private one to the connection (DNS rebinding) cannot reach inside
the network. The request still names the host: ``Host:`` is the endpoint's
host, and over TLS the SNI and the certificate check use the host name, not
the address. Redirects are never followed (a 3xx is an answer like any other
non-2xx), proxies and ``.netrc`` from the environment are ignored, and only the
start of the answer is read. The timeout bounds each read, and a deadline (connect
plus read timeout) the whole exchange: a receiver that drips its answer a byte at
a time has its connection shut down then.

A refused address raises ``RefusedAddress`` (the delivery fails for good); a
host that does not resolve raises ``requests.ConnectionError``, like any other
network failure, and the delivery is retried.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from payments.integrations.addresses import (
    IPAddress,
    RefusedAddress,
    UnresolvableHost,
    WebhookTarget,
    webhook_target_resolve,
    webhook_url_check,
)

__all__ = ["ANSWER_BYTES", "Answer", "RefusedAddress", "webhook_post"]

ANSWER_BYTES = 4096


@dataclass(frozen=True)
class Answer:
    status_code: int
    text: str  # the start of the body, at most ANSWER_BYTES bytes decoded


@dataclass
class Deadline:
    """Shuts the delivery's sockets down when it expires. A timeout bounds each socket
    read only: a receiver dripping its answer a byte at a time would otherwise hold
    the worker for as long as it likes."""

    sockets: list[socket.socket] = field(default_factory=list)
    expired: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def watch(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self.lock:
            self.sockets.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # closed already
        sock.shutdown(socket.SHUT_RDWR)


def _pool_classes(deadline: Deadline) -> dict[str, type[HTTPConnectionPool]]:
    """urllib3 pools whose connections hand their socket to ``deadline`` once connected."""

    class Connection(HTTPConnection):
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    class TLSConnection(HTTPSConnection):
        def connect(self) -> None:
            super().connect()
            deadline.watch(self.sock)

    class Pool(HTTPConnectionPool):
        ConnectionCls = Connection

    class TLSPool(HTTPSConnectionPool):
        ConnectionCls = TLSConnection

    return {"http": Pool, "https": TLSPool}


class PinnedAddressAdapter(HTTPAdapter):
    """Connects to ``address`` whatever the URL's host; TLS still checks the host name.
    With a ``deadline``, its connections are shut down when the deadline expires."""

    def __init__(self, address: IPAddress, hostname: str, deadline: Deadline | None = None) -> None:
        self.address = address
        self.hostname = hostname
        super().__init__(max_retries=0)
        if deadline is not None:
            self.poolmanager.pool_classes_by_scheme = _pool_classes(deadline)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        address = self.address
        host_params["host"] = f"[{address}]" if address.version == 6 else str(address)
        if host_params["scheme"] == "https":
            pool_kwargs["server_hostname"] = self.hostname
            pool_kwargs["assert_hostname"] = self.hostname
        return host_params, pool_kwargs


def _decode(raw: bytes, encoding: str | None) -> str:
    try:
        return raw.decode(encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return raw.decode("utf-8", errors="replace")


def webhook_post(
    url: str,
    *,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float | tuple[float, float],
    allow_local: bool | None = None,
    verify: bool | str = True,
) -> Answer:
    """POST ``body`` to ``url`` once, on an address checked by the policy.

    Raises ``RefusedAddress`` when the URL or any address its host resolves to
    is refused, and ``requests.RequestException`` for network failures (a host
    that does not resolve included). ``verify`` is the CA bundle (tests).
    """
    target = webhook_url_check(url, allow_local=allow_local)
    try:
        addresses = webhook_target_resolve(target, allow_local=allow_local)
    except UnresolvableHost as exc:
        raise requests.ConnectionError(exc.message) from exc
    address = addresses[0]
    # An IP-literal URL needs no SNI name; any other is verified against its name.
    hostname = target.host
    if _is_ip(hostname):
        hostname = str(address)
    # The whole exchange, however the receiver paces its answer, ends by this deadline.
    deadline = Deadline()
    timer = threading.Timer(_total_seconds(timeout), deadline.expire)
    timer.daemon = True
    timer.start()
    try:
        return _send(target, address, hostname, deadline, body, headers, timeout, verify)
    except requests.RequestException:  # an OSError too: as it is
        raise
    except OSError as exc:  # a read on a socket the deadline shut down
        raise requests.ConnectionError(f"No complete answer in time: {exc}") from exc
    finally:
        timer.cancel()


def _total_seconds(timeout: float | tuple[float, float]) -> float:
    return float(sum(timeout)) if isinstance(timeout, tuple) else 2 * float(timeout)


def _send(
    target: WebhookTarget,
    address: IPAddress,
    hostname: str,
    deadline: Deadline,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float | tuple[float, float],
    verify: bool | str,
) -> Answer:
    with requests.Session() as session:
        session.trust_env = False  # no proxy, no .netrc, no REQUESTS_CA_BUNDLE
        adapter = PinnedAddressAdapter(address, hostname, deadline)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        request = requests.Request(
            "POST", target.url, data=body, headers={**headers, "Host": target.host_header}
        )
        response = session.send(
            session.prepare_request(request),
            timeout=timeout,
            allow_redirects=False,
            stream=True,
            verify=verify,
        )
        try:
            raw = next(response.iter_content(ANSWER_BYTES), b"")
        finally:
            response.close()
    return Answer(status_code=response.status_code, text=_decode(raw, response.encoding))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
