"""A customer's browser, reduced to HTTP: logs in, fills a cart from several sellers,
checks out and pays with a local test card, the same requests a browser sends
(CSRF token, Origin, behind a TLS proxy). Used by the fault tests against gunicorn.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import requests
from django.test import override_settings

from payments.processors.local import SIGNATURE_HEADER, sign

CARD_PAYS = "4242 4242 4242 4242"
PAID_TEXT = "Thank you! Your payment was received"
ADDRESS = {
    "name": "Fault Test",
    "line1": "221 Larkspur Lane",
    "line2": "",
    "city": "Portland",
    "postal_code": "97201",
    "country": "US",
}


def submission_token(page: str) -> str:
    """The checkout form's one-time token (its hidden field), as a browser submits it."""
    found = re.search(r'name="submission_token" value="([^"]+)"', page)
    if found is None:
        raise ShopperError("no submission token in the checkout form")
    return found.group(1)


class ShopperError(Exception):
    def __init__(self, message: str, response: requests.Response | None = None) -> None:
        super().__init__(message)
        self.status = response.status_code if response is not None else None


@dataclass(frozen=True)
class Item:
    product_id: int
    slug: str


class Shopper:
    def __init__(self, base_url: str, *, timeout: float = 30) -> None:
        self.base = base_url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["X-Forwarded-Proto"] = "https"

    def _behind_tls_proxy(self, response: requests.Response) -> requests.Response:
        """Keep sending the site's Secure cookies over the plain HTTP between the "proxy"
        (these requests, marked X-Forwarded-Proto: https) and gunicorn."""
        for cookie in self.session.cookies:
            cookie.secure = False
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        return self._behind_tls_proxy(
            self.session.get(
                self.base + path, allow_redirects=False, timeout=self.timeout, **kwargs
            )
        )

    def post(self, path: str, data: dict) -> requests.Response:
        token = self.session.cookies.get("csrftoken")
        if token is None:
            raise ShopperError("no CSRF cookie yet")
        return self._behind_tls_proxy(
            self.session.post(
                self.base + path,
                data={"csrfmiddlewaretoken": token, **data},
                headers={"Origin": self.base.replace("http://", "https://", 1)},
                allow_redirects=False,
                timeout=self.timeout,
            )
        )

    @staticmethod
    def expect(response: requests.Response, status: int, what: str) -> requests.Response:
        if response.status_code != status:
            title = re.search(r"<title>(.*?)</title>", response.text or "", re.S)
            raise ShopperError(
                f"{what}: {response.status_code}, expected {status}"
                + (f" ({title.group(1).strip()})" if title else ""),
                response,
            )
        return response

    def login(self, email: str, password: str) -> None:
        self.expect(self.get("/accounts/login/"), 200, "login page")
        response = self.post(
            "/accounts/login/", {"username": email, "password": password, "next": "/"}
        )
        self.expect(response, 302, "log in")

    def buy(self, items: list[Item], *, currency: str = "USD", card: str = CARD_PAYS) -> int:
        """Place an order of one of each item and pay it; returns the order's number."""
        for item in items:
            page = f"/products/{item.slug}/"
            response = self.post(
                "/cart/add/", {"product": item.product_id, "quantity": "1", "next": page}
            )
            self.expect(response, 302, f"add {item.slug}")
        page = self.expect(self.get(f"/checkout/{currency}/"), 200, "checkout page")
        form = ADDRESS | {"submission_token": submission_token(page.text)}
        response = self.expect(self.post(f"/checkout/{currency}/", form), 302, "check out")
        order_id = int(re.search(r"/orders/(\d+)/", response.headers["Location"]).group(1))
        self.expect(self.get(f"/orders/{order_id}/pay/"), 200, "payment page")
        card_form = {"card_number": card, "expiry": "12/34", "cvc": "123"}
        self.expect(self.post(f"/orders/{order_id}/pay/", card_form), 302, "pay")
        return order_id

    def is_paid(self, order_id: int) -> bool:
        response = self.expect(self.get(f"/orders/{order_id}/"), 200, "order page")
        return PAID_TEXT in response.text


def ignored_event(event_id: str) -> bytes:
    """An event of a type the app stores and ignores."""
    return json.dumps(
        {"id": event_id, "type": "customer.created", "created": 1, "data": {"object": {}}}
    ).encode()


def post_webhook(base_url: str, secret_key: str, payload: bytes) -> requests.Response:
    """POST an event as the local processor does, signed with the server's secret
    (derived from its SECRET_KEY), through the TLS proxy."""
    with override_settings(SECRET_KEY=secret_key):
        signature = sign(payload)
    return requests.post(
        f"{base_url}/payments/webhooks/local/",
        data=payload,
        headers={
            "Content-Type": "application/json",
            "X-Forwarded-Proto": "https",
            SIGNATURE_HEADER: signature,
        },
        timeout=30,
    )
