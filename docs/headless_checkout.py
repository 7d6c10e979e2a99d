"""Headless checkout: buy two products of two sellers and pay through the API.

    python docs/headless_checkout.py --base-url http://127.0.0.1:8000 --token mkt_...

(or MARKETPLACE_URL and MARKETPLACE_TOKEN in the environment). With the local
processor it pays with a test card; --card 4000002500003155 takes the 3-D Secure
branch. Standard library only. Exits 0 once the order is paid.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid


class API:
    def __init__(self, base_url, token):
        self.base_url, self.token = base_url.rstrip("/"), token

    def call(self, method, path, body=None):
        """One request; a POST carries a fresh Idempotency-Key (reuse it to retry)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if method == "POST":
            headers["Idempotency-Key"] = str(uuid.uuid4())
            headers["Content-Type"] = "application/json"
            data = json.dumps(body or {}).encode()
        url = self.base_url + path  # http(s) only: checked in main()
        request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return json.load(response)
        except urllib.error.HTTPError as error:
            problem = json.load(error)  # RFC 9457 problem details
            sys.exit(f"{method} {path}: {error.code} {problem['code']}: {problem['detail']}")


def objects(listing):
    """The objects of a list answer."""
    return listing["data"] if "data" in listing else listing["results"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=os.environ.get("MARKETPLACE_URL"))
    parser.add_argument("--token", default=os.environ.get("MARKETPLACE_TOKEN"))
    parser.add_argument("--card", default="4242 4242 4242 4242")
    parser.add_argument("--timeout", type=float, default=30, help="seconds to wait for paid")
    args = parser.parse_args()
    if not args.base_url or not args.token:
        parser.error("give --base-url and --token (or MARKETPLACE_URL, MARKETPLACE_TOKEN)")
    if not args.base_url.startswith(("http://", "https://")):
        parser.error("--base-url is an http:// or https:// address")
    api = API(args.base_url, args.token)

    # 1. Two products of two sellers, in one currency.
    chosen = {}
    for product in objects(api.call("GET", "/api/v1/products/")):
        first = next(iter(chosen.values()), product)
        if product["stock"] > 0 and product["currency"] == first["currency"]:
            chosen.setdefault(product["seller"], product)
    if len(chosen) < 2:
        sys.exit("The catalog needs products of two sellers in one currency.")
    items = [{"product": p["id"], "quantity": 1} for p in list(chosen.values())[:2]]

    # 2. The order: prices, commission and splits are decided by the server.
    shipping = {
        "name": "Ada Lovelace",
        "line1": "1 Main St",
        "city": "Springfield",
        "postal_code": "12345",
        "country": "US",
    }
    order = api.call("POST", "/api/v1/orders/", {"items": items, "shipping": shipping})
    print(f"Order #{order['id']}: {order['total_minor']} {order['currency']} (minor units)")

    # 3. Start the payment. With Stripe, hand `client_secret` to Stripe.js or a
    #    mobile SDK here; with the local processor, confirm with a test card.
    payment_path = f"/api/v1/orders/{order['id']}/payment/"
    payment = api.call("POST", payment_path)
    if payment["processor"] != "local":
        sys.exit(f"Confirm {payment['payment_intent']} with Stripe.js, then poll {payment_path}")
    payment = api.call("POST", payment_path + "confirm/", {"card_number": args.card})
    action = payment["next_action"]
    if action and action["type"] == "local_authenticate":  # 3-D Secure: the customer approves
        payment = api.call("POST", action["url"], {"approve": True})

    # 4. Paid once the processor's event is processed: read until then.
    deadline = time.monotonic() + args.timeout
    while payment["order_status"] != "paid":
        if payment["status"] in ("failed", "canceled"):
            sys.exit(f"Payment {payment['status']}: {payment['failure_message']}")
        if time.monotonic() > deadline:
            sys.exit(f"Order #{order['id']} not paid after {args.timeout:.0f} s.")
        time.sleep(0.5)
        payment = api.call("GET", payment_path)

    # 5. The split per seller: what each one earns, and the platform's commission.
    order = api.call("GET", f"/api/v1/orders/{order['id']}/")
    print(f"Order #{order['id']} is {order['status']}. Split per seller:")
    for seller in sorted({line["seller"] for line in order["lines"]}):
        lines = [line for line in order["lines"] if line["seller"] == seller]
        gross = sum(line["gross_minor"] for line in lines)
        commission = sum(line["commission_minor"] for line in lines)
        share = sum(line["seller_share_minor"] for line in lines)
        print(f"  {seller}: gross {gross}, commission {commission}, seller share {share}")


if __name__ == "__main__":
    main()
