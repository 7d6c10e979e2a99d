"""Local stand-ins for the internet: an HTTP receiver on 127.0.0.1 and a fake DNS.

``receiver``: a threaded HTTP(S) server on 127.0.0.1 that records each request
(method, path, headers, body) and answers ``status`` (or a per-path answer set
with ``answer``), with ``OUTBOUND_WEBHOOKS_ALLOW_LOCAL`` on so deliveries may go
to it. ``fake_dns``: ``socket.getaddrinfo`` for made-up names, mapped with
``fake_dns.add(name, *addresses)``; an unknown name does not resolve, as with a
real resolver, and addresses and ``localhost`` go to the real one (no DNS).
Registered from tests/conftest.py.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers ``status``."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Received] = []
        self.status = 200
        self.body = b""
        self.answers: dict[str, tuple[int, dict[str, str], bytes]] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver.requests.append(
                    Received(self.command, self.path, dict(self.headers.items()), body)
                )
                default_body = receiver.body or (
                    b"thanks" if receiver.status < 300 else b"try later"
                )
                status, headers, answer = receiver.answers.get(
                    self.path, (receiver.status, {}, default_body)
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return self.url_for("127.0.0.1")

    def url_for(self, host: str, path: str = "/hooks") -> str:
        """This receiver's address under another name (``fake_dns`` maps it here)."""
        return f"{self.scheme}://{host}:{self.port}{path}"

    def answer(
        self, path: str, status: int, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> None:
        self.answers[path] = (status, headers or {}, body)

    def events(self) -> list[Any]:
        return [request.json() for request in self.requests if request.method == "POST"]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings) -> Iterator[Receiver]:
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = True
    server = Receiver()
    yield server
    server.close()


class FakeResolver:
    """``socket.getaddrinfo`` for made-up names; the rest goes to ``real``."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.names: dict[str, list[str]] = {}
        self.lookups: list[str] = []

    def add(self, name: str, *addresses: str) -> None:
        """``name`` resolves to ``addresses`` from now on (again: the answer changes)."""
        self.names[name.lower().rstrip(".")] = [str(ipaddress.ip_address(a)) for a in addresses]

    def __call__(
        self,
        host: Any,
        port: Any,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        name = host.decode() if isinstance(host, bytes) else host
        key = name.lower().rstrip(".") if isinstance(name, str) else None
        if key not in self.names:
            if key is None or _is_address(key) or key == "localhost":
                return self.real(host, port, family, type, proto, flags)
            self.lookups.append(key)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        self.lookups.append(key)
        number = int(port) if isinstance(port, int | str) and str(port).isdigit() else 0
        kinds = [(type, proto)] if type else [(socket.SOCK_STREAM, socket.IPPROTO_TCP)]
        found = []
        for address in self.names[key]:
            version = ipaddress.ip_address(address).version
            af = socket.AF_INET if version == 4 else socket.AF_INET6
            if family not in (0, socket.AF_UNSPEC, af):
                continue
            sockaddr = (address, number) if version == 4 else (address, number, 0, 0)
            found += [(af, kind, kind_proto or 6, "", sockaddr) for kind, kind_proto in kinds]
        if not found:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return found


def _is_address(name: str) -> bool:
    """An IP address, in any form the real resolver reads without DNS (127.1 too)."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        try:
            socket.inet_aton(name)
        except (OSError, ValueError):
            return False
    return True


@pytest.fixture
def fake_dns(monkeypatch) -> FakeResolver:
    resolver = FakeResolver(socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver
