"""Where webhooks may go (payments/integrations/addresses.py): refused at registration
through the API, and again at delivery, with no connection made."""

import ipaddress
import re

import pytest
from django.core.cache import cache
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from marketplace.kernel.errors import InvalidRequest
from payments.integrations.addresses import (
    RefusedAddress,
    address_refusal,
    webhook_address_check,
    webhook_url_check,
)
from payments.integrations.webhooks import webhook_delivery_attempt, webhook_endpoint_create
from payments.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

# The addresses of the finding: IPv6 forms of private IPv4 addresses.
ISSUE_URLS = [
    "https://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
    "https://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "https://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254 (cloud metadata)
    "https://[::127.0.0.1]/",  # IPv4-compatible
    "https://[2002:7f00:1::1]/",  # 6to4 of 127.0.0.1
]


@pytest.fixture(autouse=True)
def _production_policy(settings):
    settings.OUTBOUND_WEBHOOKS_ALLOW_LOCAL = False
    cache.clear()  # the API's rate limits
    yield
    cache.clear()


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["seller", "operator"])
@pytest.mark.parametrize("url", ISSUE_URLS)
def test_the_issue_addresses_are_refused_at_registration(api_as, seller, operator, role, url):
    user = seller.user if role == "seller" else operator

    answer = api_as(user).post(
        reverse("api:webhook-endpoint-list"), {"url": url, "events": ["order.paid"]}, format="json"
    )

    assert answer.status_code == 400
    assert answer["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert problem["param"] == "url"
    assert "public address" in problem["detail"]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.django_db
def test_an_endpoint_cannot_be_moved_to_such_an_address(api_as, seller, fake_dns):
    fake_dns.add("hooks.example.com", "93.184.215.14")
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="https://hooks.example.com/h", events=["order.paid"]
    )

    answer = api_as(seller.user).patch(
        reverse("api:webhook-endpoint-detail", args=[endpoint.pk]),
        {"url": "https://[64:ff9b::a00:1]/"},
        format="json",
    )

    assert answer.status_code == 400 and answer.json()["param"] == "url"
    endpoint.refresh_from_db()
    assert endpoint.url == "https://hooks.example.com/h"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ISSUE_URLS)
def test_the_issue_addresses_are_refused_at_delivery_without_a_connection(
    seller, fake_dns, network_guard, url
):
    fake_dns.add("hooks.example.com", "93.184.215.14")
    endpoint = webhook_endpoint_create(
        owner=seller.user, url="https://hooks.example.com/h", events=["order.paid"]
    )
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=url)  # written behind the check
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint, event_type="order.paid", payload={}
    )

    result = webhook_delivery_attempt(delivery_id=delivery.pk)

    assert (result.status, result.attempts) == ("failed", 1)  # refused: not retried
    attempt = WebhookAttempt.objects.get(delivery=delivery)
    assert attempt.status_code is None and "public address" in attempt.error
    assert network_guard.connections == []


# --- The rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.0.0.1", "a private address"),
        ("100.64.0.1", "a carrier-grade NAT address"),
        ("127.0.0.1", "a loopback address"),
        ("169.254.169.254", "a link-local address"),
        ("0.0.0.0", "the unspecified address"),
        ("224.0.0.1", "a multicast address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("192.88.99.1", "a 6to4 relay address"),
        ("198.18.0.1", "reserved for benchmarking"),
        ("::1", "the loopback address"),
        ("::", "the unspecified address"),
        ("fd00::1", "a unique-local (private) address"),
        ("fe80::1", "a link-local address"),
        ("fec0::1", "a site-local address"),
        ("ff0e::1", "a multicast address"),
        ("2001:db8::1", "reserved for documentation"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "a Teredo tunnel address"),
        ("2002:5db8:d70e::1", "a 6to4 tunnel address"),  # even of a public address
        ("::5db8:d70e", "an IPv4-compatible address"),
        ("::ffff:0:a00:1", "an IPv4-translated address"),
        ("64:ff9b:1::a00:1", "a local-use NAT64 address"),
        ("64:ff9b::a00:1", "a form of 10.0.0.1, which is a private address"),
        ("::ffff:127.0.0.1", "a form of 127.0.0.1, which is a loopback address"),
        ("100::1", "not a public address"),
    ],
)
def test_addresses_that_are_not_public_are_refused_with_a_reason(address, why):
    assert address_refusal(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c", "64:ff9b::5db8:d70e"],
)
def test_public_addresses_and_nat64_forms_of_them_are_allowed(address):
    assert address_refusal(ipaddress.ip_address(address)) is None


def test_allow_local_admits_private_addresses_but_not_multicast_or_unspecified():
    local = [ipaddress.ip_address(a) for a in ("127.0.0.1", "10.0.0.1", "::1", "fd00::1")]
    assert [address_refusal(a, allow_local=True) for a in local] == [None] * 4
    assert address_refusal(ipaddress.ip_address("224.0.0.1"), allow_local=True)
    assert address_refusal(ipaddress.ip_address("0.0.0.0"), allow_local=True)


NON_PUBLIC_V4 = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16"]
NON_PUBLIC_V4 += ["100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4", "198.18.0.0/15"]
REFUSED_OUTRIGHT = ["::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"]
EMBEDDING = ["64:ff9b::/96", "::ffff:0:0/96"]


@given(st.sampled_from(REFUSED_OUTRIGHT).flatmap(lambda net: st.ip_addresses(network=net)))
def test_every_address_of_the_deprecated_transition_ranges_is_refused(address):
    assert address_refusal(address) is not None


@given(
    st.sampled_from(EMBEDDING),
    st.ip_addresses(v=4),
)
def test_nat64_and_mapped_addresses_are_judged_by_the_ipv4_address_they_carry(prefix, v4):
    network = ipaddress.IPv6Network(prefix)
    address = ipaddress.IPv6Address(int(network.network_address) | int(v4))

    assert (address_refusal(address) is None) == (address_refusal(v4) is None)


@given(st.sampled_from(NON_PUBLIC_V4).flatmap(lambda net: st.ip_addresses(network=net)))
def test_every_non_public_ipv4_address_is_refused_alone_or_embedded(v4):
    nat64 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) | int(v4))

    assert address_refusal(v4) is not None and address_refusal(nat64) is not None


# --- The URL ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.215.14/", "https://"),
        ("ftp://93.184.215.14/", "https://"),
        ("https://user:secret@93.184.215.14/", "user name or password"),
        ("https://93.184.215.14:0/", "port that does not exist"),
        ("https://93.184.215.14:99999/", "port that does not exist"),
        ("https:///path", "no host"),
        ("https://[fe80::1%25eth0]/", "a zone"),
        ("https://2130706433/", "resolves to 127.0.0.1, which is a loopback address"),
        ("https://127.1/", "loopback"),
    ],
)
def test_urls_are_checked_before_any_address(url, message):
    with pytest.raises(RefusedAddress, match=message) as refused:
        webhook_address_check(url)
    assert refused.value.param == "url"


def test_a_name_that_does_not_resolve_is_refused_at_registration(fake_dns):
    with pytest.raises(InvalidRequest, match="does not resolve") as refused:
        webhook_address_check("https://nowhere.example.test/h")
    assert refused.value.param == "url"


def test_one_private_address_among_the_answers_refuses_the_name(fake_dns):
    fake_dns.add("mixed.example.com", "93.184.215.14", "10.0.0.7")

    with pytest.raises(RefusedAddress, match=re.escape("mixed.example.com resolves to 10.0.0.7")):
        webhook_address_check("https://mixed.example.com/h")


def test_the_host_header_names_the_port_only_when_it_is_not_the_default():
    assert webhook_url_check("https://Hooks.Example.com/h").host_header == "hooks.example.com"
    assert webhook_url_check("https://hooks.example.com:8443/").host_header == (
        "hooks.example.com:8443"
    )
    assert webhook_url_check("https://[2606:4700::1111]:8443/").host_header == (
        "[2606:4700::1111]:8443"
    )
