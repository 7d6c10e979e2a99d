"""Where webhooks may be sent: the address policy for integrators' endpoints.

An endpoint's URL must be ``https://`` with a host, a valid port and no user
name or password in it. Every address its host resolves to must be *public*:

* IPv4: globally routable unicast. Refused: this network (0/8), private
  (10/8, 172.16/12, 192.168/16), shared address space (100.64/10, carrier-grade
  NAT), loopback (127/8), link-local (169.254/16, cloud metadata), IETF
  protocol assignments (192.0.0/24), documentation, 6to4 relays (192.88.99/24),
  benchmarking (198.18/15), multicast (224/4), reserved (240/4) and broadcast.
* IPv6: only global unicast (``2000::/3``) that Python also counts as global,
  less Teredo and the other IETF assignments (``2001::/23``), documentation
  (``2001:db8::/32``, ``3fff::/20``) and 6to4 (``2002::/16``). Loopback,
  unspecified, unique-local, link-local, site-local, multicast: refused.
* IPv6 forms that carry an IPv4 address: the two a resolver legitimately
  returns for an IPv4-only host, NAT64 ``64:ff9b::/96`` (DNS64) and
  IPv4-mapped ``::ffff:0:0/96``, are judged by the IPv4 address they embed
  (``64:ff9b::a00:1`` is 10.0.0.1: refused). The others are refused outright,
  whatever they embed: IPv4-compatible ``::/96`` (deprecated), IPv4-translated
  ``::ffff:0:0:0/96``, local-use NAT64 ``64:ff9b:1::/48`` (its embedding depends
  on a local prefix length), 6to4 ``2002::/16`` and Teredo ``2001::/32``
  (deprecated tunnels; no receiver needs them). An address with a zone
  (``fe80::1%eth0``) is refused.

``settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL`` (development and tests only) also
allows ``http://`` and any unicast address (loopback, private, link-local); the
unspecified address and multicast stay refused.

The check runs at registration and again at each delivery on the addresses the
host resolves to then; the delivery connects to the address it checked
(``payments/integrations/transport.py``), so a DNS answer that changes in between
(DNS rebinding) cannot send a delivery inside the network.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from marketplace.kernel.errors import InvalidRequest

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

V4_REFUSED: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(network), why)
    for network, why in (
        ("0.0.0.0/8", "the unspecified network"),
        ("10.0.0.0/8", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address"),
        ("127.0.0.0/8", "a loopback address"),
        ("169.254.0.0/16", "a link-local address"),
        ("172.16.0.0/12", "a private address"),
        ("192.0.0.0/24", "reserved for IETF protocols"),
        ("192.0.2.0/24", "reserved for documentation"),
        ("192.88.99.0/24", "a 6to4 relay address"),
        ("192.168.0.0/16", "a private address"),
        ("198.18.0.0/15", "reserved for benchmarking"),
        ("198.51.100.0/24", "reserved for documentation"),
        ("203.0.113.0/24", "reserved for documentation"),
        ("224.0.0.0/4", "a multicast address"),
        ("240.0.0.0/4", "a reserved address"),
    )
)
V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
# Judged by the IPv4 address they embed (the last 32 bits).
V6_EMBEDDING = (
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 (DNS64)
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped
)
V6_REFUSED: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(network), why)
    for network, why in (
        ("::/128", "the unspecified address"),
        ("::1/128", "the loopback address"),
        ("::ffff:0:0:0/96", "an IPv4-translated address"),
        ("::/96", "an IPv4-compatible address"),
        ("64:ff9b:1::/48", "a local-use NAT64 address"),
        ("2001::/32", "a Teredo tunnel address"),
        ("2001::/23", "reserved for IETF protocols"),
        ("2001:db8::/32", "reserved for documentation"),
        ("2002::/16", "a 6to4 tunnel address"),
        ("3fff::/20", "reserved for documentation"),
        ("fc00::/7", "a unique-local (private) address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    )
)


class RefusedAddress(InvalidRequest):
    """The endpoint's address is not one webhooks may be sent to."""

    code = "webhook_address_refused"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="url")


class UnresolvableHost(InvalidRequest):
    """The endpoint's host name does not resolve (now)."""

    code = "webhook_host_unresolvable"

    def __init__(self, message: str) -> None:
        super().__init__(message, param="url")


@dataclass(frozen=True)
class WebhookTarget:
    """A checked endpoint URL: where to connect and what to call the host."""

    url: str
    scheme: str
    host: str  # ASCII (IDNA) host name or IP literal, without brackets
    port: int

    @property
    def host_header(self) -> str:
        """The ``Host:`` value: the name, with the port when it is not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def _allow_local(allow_local: bool | None) -> bool:
    return settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL if allow_local is None else allow_local


def address_refusal(address: IPAddress, *, allow_local: bool = False) -> str | None:
    """Why webhooks may not go to ``address`` (a phrase: "a private address"), or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        return "an address with a zone"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if allow_local:
        return None
    if isinstance(address, ipaddress.IPv4Address):
        for network, why in V4_REFUSED:
            if address in network:
                return why
        return None if address.is_global else "not a public address"
    for embedding in V6_EMBEDDING:
        if address in embedding:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
            inner = address_refusal(embedded)
            return f"a form of {embedded}, which is {inner}" if inner else None
    for v6_network, why in V6_REFUSED:
        if address in v6_network:
            return why
    if address not in V6_GLOBAL_UNICAST or not address.is_global:
        return "not a public address"
    return None


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def webhook_url_check(url: str, *, allow_local: bool | None = None) -> WebhookTarget:
    """Check the URL itself (scheme, host, port, no credentials) without resolving it.
    An IP literal host is checked against the address policy here."""
    allow_local = _allow_local(allow_local)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        if "port" in str(exc).lower():
            raise RefusedAddress("The address has a port that does not exist.") from exc
        raise RefusedAddress("The address is not a valid URL.") from exc
    scheme = parts.scheme.lower()
    if scheme != "https" and not (allow_local and scheme == "http"):
        raise RefusedAddress("Webhook endpoints must use https://.")
    if parts.username is not None or parts.password is not None:
        raise RefusedAddress("The address must not contain a user name or password.")
    if not parts.hostname:
        raise RefusedAddress("The address has no host.")
    if port == 0:
        raise RefusedAddress("The address has a port that does not exist.")
    try:
        host = parts.hostname.encode("idna").decode("ascii").rstrip(".")
    except UnicodeError as exc:
        raise RefusedAddress(f"{parts.hostname} is not a valid host name.") from exc
    if not host:
        raise RefusedAddress("The address has no host.")
    target = WebhookTarget(
        url=url.strip(), scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80)
    )
    literal = _ip_literal(host)
    if literal is not None:
        _refuse_unless_allowed(target, literal, allow_local=allow_local)
    return target


def _refuse_unless_allowed(target: WebhookTarget, address: IPAddress, *, allow_local: bool) -> None:
    why = address_refusal(address, allow_local=allow_local)
    if why is None:
        return
    if _ip_literal(target.host) is not None:
        raise RefusedAddress(
            f"Webhook endpoints must be on a public address; {target.host} is {why}."
        )
    raise RefusedAddress(
        f"Webhook endpoints must be on a public address; {target.host} resolves to "
        f"{address}, which is {why}."
    )


def webhook_target_resolve(
    target: WebhookTarget, *, allow_local: bool | None = None
) -> list[IPAddress]:
    """Every address ``target``'s host resolves to now, each one checked: one refused
    address refuses them all. An IP literal is its own only address."""
    allow_local = _allow_local(allow_local)
    literal = _ip_literal(target.host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = socket.getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except (OSError, UnicodeError) as exc:
            raise UnresolvableHost(f"{target.host} does not resolve.") from exc
        addresses = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = ipaddress.ip_address(str(sockaddr[0]))
            if isinstance(address, ipaddress.IPv6Address) and len(sockaddr) > 3 and sockaddr[3]:
                address = ipaddress.IPv6Address(f"{address}%{sockaddr[3]}")
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise UnresolvableHost(f"{target.host} does not resolve.")
    for address in addresses:
        _refuse_unless_allowed(target, address, allow_local=allow_local)
    return addresses


def webhook_address_check(url: str, *, allow_local: bool | None = None) -> WebhookTarget:
    """Check an endpoint URL at registration: the URL, then every address it resolves to.
    Raises ``RefusedAddress`` or ``UnresolvableHost`` (400s naming ``url``)."""
    target = webhook_url_check(url, allow_local=allow_local)
    webhook_target_resolve(target, allow_local=allow_local)
    return target
