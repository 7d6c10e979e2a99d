"""A strict, stateful fake of the Stripe API, served in-process to stripe-python.

``FakeStripe`` subclasses ``stripe.HTTPClient`` like ``RecordingHTTPClient`` in
``stripe_fake.py``: pass it as ``http_client`` to ``StripeProcessor`` (or to a
``stripe.StripeClient``) and the real adapter talks to it, SDK retries
included, with nothing leaving the process. Unlike the queue-based fake it keeps
accounts, payments, balances, transfers, payouts and events, and it refuses what
real Stripe refuses, so an adapter bug fails a test instead of passing against a
canned answer.

What it enforces, with the page of Stripe's documentation each rule comes from:

- Every request first goes through ``stripe_rules.check_request`` (unknown,
  missing and empty parameters, keys, the Stripe-Account header; its docstring
  lists the sources). Nothing it refuses is stored under an idempotency key.
- Idempotency (https://docs.stripe.com/api/idempotent_requests): a POST's
  result is saved per (account, ``Idempotency-Key``) once the endpoint starts
  running, errors and 500s included, and replayed for 24 hours to a retry with
  the same parameters (header ``Idempotent-Replayed: true``); the same key with
  other parameters answers 400 ``idempotency_error``. A request refused by
  validation, or rate limited (429, https://docs.stripe.com/rate-limits), saves
  nothing. After 24 hours the key is forgotten and the request runs anew.
- Connected accounts (https://docs.stripe.com/api/connected-accounts): payouts,
  balances, events and balance transactions belong to the account named by the
  ``Stripe-Account`` header (the platform without it); an object of another
  account answers 404 ``resource_missing``; an account lists its own events only
  (https://docs.stripe.com/api/events/list).
- Transfers (https://docs.stripe.com/api/transfers/create): the destination
  must have the ``transfers`` capability active, and without a
  ``source_transaction`` the platform's available balance must cover the amount
  (400 ``balance_insufficient``); a ``source_transaction`` must be a charge.
- Transfer reversals (https://docs.stripe.com/api/transfer_reversals): only up
  to the amount not yet reversed, and only if the destination account's
  available balance covers the reversal (400 ``balance_insufficient``).
- Payouts (https://docs.stripe.com/api/payouts/create): from the account's own
  available balance (400 ``balance_insufficient``), only once payouts are
  enabled (400 ``payouts_not_allowed``, https://docs.stripe.com/error-codes). A
  paid payout can still fail later and its money returns to the balance
  (https://docs.stripe.com/api/payouts/object, ``status``).
- Express accounts that request only ``transfers`` are recipients: onboarding
  makes payouts and transfers work but never ``charges_enabled``
  (https://docs.stripe.com/connect/service-agreement-types).
- Anything else answers 404, so an unexpected call fails loudly.

The clock is injectable (``now=``, ``advance``); object ids are ``<prefix>_fakeNNNN``.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import stripe
from requests.structures import CaseInsensitiveDict

from tests.payments.processors import stripe_fake as fake
from tests.payments.processors import stripe_rules as rules
from tests.payments.processors.stripe_fake import RecordingBase

# Seconds an idempotency key is kept (https://docs.stripe.com/api/idempotent_requests).
IDEMPOTENCY_KEY_TTL_SECONDS = 24 * 3600
# Page size of a list without ``limit`` (https://docs.stripe.com/api/pagination).
DEFAULT_LIST_LIMIT = 10
# How long an Account Link stays usable (https://docs.stripe.com/api/account_links/object).
ACCOUNT_LINK_TTL_SECONDS = 300
# 2026-01-01T00:00:00Z
DEFAULT_NOW = 1767225600.0

_DEFAULT_CURRENCY = {"US": "usd", "GB": "gbp", "CA": "cad", "AU": "aud", "JP": "jpy"}
_EURO_COUNTRIES = {"AT", "BE", "DE", "ES", "FI", "FR", "IE", "IT", "NL", "PT"}

Refusal = tuple[int, dict[str, Any]]


class _Refused(Exception):
    """A handler's error answer (status and Stripe error body)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal[1]["error"]["message"])
        self.status, self.body = refusal


@dataclass(frozen=True)
class _Call:
    """One request as the handlers see it."""

    method: str
    path: str
    object_id: str | None
    params: dict[str, str]
    account: str | None  # the Stripe-Account header; None for the platform
    idempotency_key: str | None
    request_id: str

    def expand(self) -> list[str]:
        return [v for k, v in self.params.items() if rules.normalize(k) == "expand[]"]


@dataclass
class _Stored:
    """A result saved under an idempotency key."""

    created: float
    fingerprint: tuple[str, str, tuple[tuple[str, str], ...]]
    status: int
    body: dict[str, Any]
    request_id: str


@dataclass
class _Fault:
    method: str
    path_prefix: str
    status: int
    body: dict[str, Any] | None
    remaining: int
    after: bool  # run the request, then fail the connection

    def matches(self, method: str, path: str) -> bool:
        return self.method == method and path.startswith(self.path_prefix)


class FakeStripe(RecordingBase):
    """Stripe's API for one platform and its connected accounts, in memory."""

    name = "fake-stripe"

    def __init__(self, *, now: float = DEFAULT_NOW) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []
        self._now = float(now)
        self._counters: dict[str, int] = {}
        self._request_ids = 0
        self._objects: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, str | None] = {}
        self._order: dict[str, int] = {}
        # Available and pending balance per owner (None: the platform) and currency.
        self._available: dict[str | None, dict[str, int]] = {None: {}}
        self._pending: dict[str | None, dict[str, int]] = {None: {}}
        self._idempotency: dict[tuple[str | None, str], _Stored] = {}
        self._faults: list[_Fault] = []
        self._payout_refusals: dict[str, tuple[str, str]] = {}
        self._payment_methods: dict[str, str] = {}  # payment method id: its type
        self._handlers: dict[tuple[str, str], Callable[[_Call], Refusal]] = {
            ("POST", "/v1/accounts"): self._account_create,
            ("GET", "/v1/accounts/{id}"): self._account_get,
            ("POST", "/v1/account_links"): self._account_link_create,
            ("POST", "/v1/payment_intents"): self._payment_intent_create,
            ("GET", "/v1/payment_intents/{id}"): self._payment_intent_get,
            ("POST", "/v1/payment_intents/{id}/cancel"): self._payment_intent_cancel,
            ("POST", "/v1/refunds"): self._refund_create,
            ("POST", "/v1/transfers"): self._transfer_create,
            ("GET", "/v1/transfers"): self._transfer_list,
            ("GET", "/v1/transfers/{id}"): self._transfer_get,
            ("POST", "/v1/transfers/{id}/reversals"): self._reversal_create,
            ("GET", "/v1/transfers/{id}/reversals"): self._reversal_list,
            ("POST", "/v1/payouts"): self._payout_create,
            ("GET", "/v1/payouts"): self._payout_list,
            ("GET", "/v1/payouts/{id}"): self._payout_get,
            ("GET", "/v1/balance"): self._balance_get,
            ("GET", "/v1/events"): self._event_list,
            ("GET", "/v1/balance_transactions"): self._balance_transaction_list,
        }
        missing = {e.key for e in rules.ENDPOINTS} - set(self._handlers)
        assert not missing, f"stripe_rules endpoints without a handler: {missing}"

    # --- Clock ---------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds

    # --- Fault injection -------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        path_prefix: str,
        status: int = 500,
        body: dict[str, Any] | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``body``).

        A 429 comes from the rate limiter in front of the API: nothing runs and
        nothing is saved under the key. Any other status stands for the endpoint
        failing once it started, so a POST's key saves it and retries get it replayed.
        """
        self._faults.append(
            _Fault(method.upper(), path_prefix, status, body, remaining=times, after=False)
        )

    def fail_after_next(self, method: str, path_prefix: str, times: int = 1) -> None:
        """Run the next matching request(s), save the result, then fail the connection.

        The client sees the retryable ``APIConnectionError`` of a read timeout;
        the SDK's retry with the same key gets the saved result replayed.
        """
        self._faults.append(
            _Fault(method.upper(), path_prefix, 0, None, remaining=times, after=True)
        )

    # --- The SDK's HTTPClient interface --------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        headers: Any,
        post_data: Any = None,
        *,
        _usage: Any = None,
    ) -> tuple[str, int, Any]:
        recorded = self.record(method, url, headers, post_data)
        method, query, form, sent_headers = (
            recorded.method,
            recorded.query,
            recorded.params,
            recorded.headers,
        )
        self._request_ids += 1
        request_id = f"req_fake{self._request_ids:04d}"
        params = form if method == "POST" else query
        status, body, extra, fail_after = self._answer(
            method, recorded.path, params, sent_headers, request_id
        )
        if fail_after:
            raise fake.timeout_error()
        response_headers = CaseInsensitiveDict({"Request-Id": request_id, **extra})
        key = rules.header(sent_headers, "Idempotency-Key")
        if method == "POST" and key:
            response_headers["Idempotency-Key"] = key
        return json.dumps(body), status, response_headers

    # --- Answering -------------------------------------------------------------------------

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        headers: Mapping[str, str],
        request_id: str,
    ) -> tuple[int, dict[str, Any], dict[str, str], bool]:
        """(status, body, extra headers, fail the connection after) for one request."""
        # Validation first: a refused request saves nothing under its key.
        refusal = rules.check_request(method, path, params, headers)
        if refusal is not None:
            return refusal[0], refusal[1], {}, False
        found = rules.match(method, path)
        assert found is not None  # check_request refuses unknown endpoints
        endpoint, object_id = found

        # The rate limiter stands in front of the API (https://docs.stripe.com/rate-limits).
        limited = self._take_fault(method, path, limiter=True)
        if limited is not None:
            return limited.status, limited.body or fake.rate_limit_body(), {}, False

        account = rules.header(headers, "Stripe-Account")
        if account is not None and account not in self._available:
            # https://docs.stripe.com/error-codes: account_invalid.
            status, body = rules.error(
                403,
                "invalid_request_error",
                f"The provided key does not have access to account '{account}' "
                "(or that account does not exist).",
                code="account_invalid",
            )
            return status, body, {}, False

        key = rules.header(headers, "Idempotency-Key") if method == "POST" else None
        fingerprint = (method, path, tuple(sorted(params.items())))
        if key is not None:
            self._forget_expired_keys()
            stored = self._idempotency.get((account, key))
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    # https://docs.stripe.com/api/idempotent_requests: parameters are compared.
                    status, body = rules.error(
                        400,
                        "idempotency_error",
                        f"Keys for idempotent requests can only be used with the same "
                        f"parameters they were first used with. Try using a key other "
                        f"than '{key}' if you meant to execute a different request.",
                    )
                    return status, body, {}, False
                replay = {"Idempotent-Replayed": "true", "Original-Request": stored.request_id}
                # A replayed answer can be lost on the way too (a pending fail_after_next).
                lost = self._take_fault(method, path, limiter=False)
                return stored.status, copy.deepcopy(stored.body), replay, bool(lost and lost.after)

        call = _Call(method, path, object_id, params, account, key, request_id)
        fault = self._take_fault(method, path, limiter=False)
        if fault is not None and not fault.after:
            status, body = fault.status, fault.body or _default_error_body(fault.status)
        else:
            try:
                status, body = self._handlers[endpoint.key](call)
            except _Refused as refused:
                status, body = refused.status, refused.body
        if key is not None and status != 429:
            self._idempotency[(account, key)] = _Stored(
                created=self._now,
                fingerprint=fingerprint,
                status=status,
                body=copy.deepcopy(body),
                request_id=request_id,
            )
        return status, body, {}, fault is not None and fault.after

    def _take_fault(self, method: str, path: str, *, limiter: bool) -> _Fault | None:
        for fault in self._faults:
            if fault.matches(method, path) and (fault.status == 429) == limiter:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _forget_expired_keys(self) -> None:
        expired = [
            k
            for k, stored in self._idempotency.items()
            if self._now - stored.created > IDEMPOTENCY_KEY_TTL_SECONDS
        ]
        for k in expired:
            del self._idempotency[k]

    # --- Objects ----------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        self._counters[prefix] = self._counters.get(prefix, 0) + 1
        return f"{prefix}_fake{self._counters[prefix]:04d}"

    def _created(self) -> int:
        return int(self._now)

    def _store(self, obj: dict[str, Any], owner: str | None) -> dict[str, Any]:
        self._objects[obj["id"]] = obj
        self._owners[obj["id"]] = owner
        self._order[obj["id"]] = len(self._order)
        return obj

    def _find(
        self, kind: str, object_id: str | None, account: str | None, *, param: str = "id"
    ) -> dict[str, Any]:
        """The ``kind`` object of the requesting account, else 404 resource_missing.

        An object of another account is as missing as one that never existed
        (https://docs.stripe.com/api/connected-accounts).
        """
        obj = self._objects.get(object_id or "")
        if obj is None or obj.get("object") != kind or self._owners[obj["id"]] != account:
            raise _Refused(rules.resource_missing(kind, object_id or "", param=param))
        return obj

    def _param_object(self, kind: str, object_id: str, param: str) -> dict[str, Any]:
        """An object named in a parameter: Stripe answers 400 rather than 404 for those."""
        obj = self._objects.get(object_id)
        if obj is None or obj.get("object") != kind or self._owners[obj["id"]] is not None:
            raise _Refused(
                rules.invalid(
                    f"No such {kind}: '{object_id}'", code="resource_missing", param=param
                )
            )
        return obj

    def _owned(self, kind: str, owner: str | None) -> list[dict[str, Any]]:
        """The ``kind`` objects of ``owner``, newest first."""
        found = [
            obj
            for obj_id, obj in self._objects.items()
            if obj.get("object") == kind and self._owners[obj_id] == owner
        ]
        return sorted(found, key=lambda o: (o["created"], self._order[o["id"]]), reverse=True)

    def _credit(self, owner: str | None, currency: str, amount: int) -> None:
        balance = self._available.setdefault(owner, {})
        balance[currency] = balance.get(currency, 0) + amount

    def _balance_transaction(
        self,
        owner: str | None,
        type_: str,
        amount: int,
        currency: str,
        source: str,
        *,
        fee: int = 0,
        category: str | None = None,
    ) -> str:
        txn_id = self._new_id("txn")
        fee_details = (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        )
        self._store(
            fake.balance_transaction(
                id=txn_id,
                amount=amount,
                available_on=self._created(),
                created=self._created(),
                currency=currency,
                fee=fee,
                fee_details=fee_details,
                net=amount - fee,
                reporting_category=category or type_,
                source=source,
                status="available",
                type=type_,
            ),
            owner,
        )
        return txn_id

    def _emit(
        self,
        type_: str,
        obj: dict[str, Any],
        *,
        account: str | None = None,
        previous: dict[str, Any] | None = None,
        call: _Call | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": copy.deepcopy(obj)}
        if previous is not None:
            data["previous_attributes"] = previous
        event = fake.event(
            id=self._new_id("evt"),
            created=self._created(),
            data=data,
            type=type_,
            request={
                "id": call.request_id if call else None,
                "idempotency_key": call.idempotency_key if call else None,
            },
        )
        if account is not None:
            # Events of connected accounts name them (https://docs.stripe.com/api/events/object).
            event["account"] = account
        self.events.append(event)
        self._order[event["id"]] = len(self._order)
        return event

    def _expand(self, obj: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
        """``obj`` with the ids at ``paths`` replaced by their objects.

        https://docs.stripe.com/api/expanding_objects: dotted paths, ``data.`` for
        each item of a list; a field that is not an expandable id is refused.
        """
        result = copy.deepcopy(obj)
        for path in paths:
            result = self._expand_path(result, path.split("."), path)
        return result

    def _expand_path(self, value: Any, parts: list[str], path: str) -> Any:
        if not parts:
            return value
        head, rest = parts[0], parts[1:]
        if isinstance(value, dict) and value.get("object") == "list" and head == "data":
            value["data"] = [self._expand_path(item, rest, path) for item in value["data"]]
            return value
        if not isinstance(value, dict) or head not in value:
            raise _Refused(
                rules.invalid(f"This property cannot be expanded ({path}).", param="expand")
            )
        field = value[head]
        if field is None:
            return value
        if isinstance(field, str):
            target = self._objects.get(field)
            if target is None:
                raise _Refused(
                    rules.invalid(f"This property cannot be expanded ({path}).", param="expand")
                )
            field = copy.deepcopy(target)
        elif not isinstance(field, dict):
            raise _Refused(
                rules.invalid(f"This property cannot be expanded ({path}).", param="expand")
            )
        value[head] = self._expand_path(field, rest, path)
        return value

    def _page(self, url: str, items: list[dict[str, Any]], params: Mapping[str, str]) -> Refusal:
        """A list object of ``items`` (newest first) after the filters and cursors.

        https://docs.stripe.com/api/pagination: ``limit``, ``starting_after``,
        ``ending_before``, ``has_more``; ``created`` filters on the timestamp.
        """
        bounds = {
            "created": lambda c, v: c == v,
            "created[gt]": lambda c, v: c > v,
            "created[gte]": lambda c, v: c >= v,
            "created[lt]": lambda c, v: c < v,
            "created[lte]": lambda c, v: c <= v,
        }
        for name, test in bounds.items():
            if name in params:
                limit_value = int(params[name])
                items = [i for i in items if test(i["created"], limit_value)]
        limit = int(params.get("limit", DEFAULT_LIST_LIMIT))
        ids = [i["id"] for i in items]
        for cursor in ("starting_after", "ending_before"):
            if cursor in params and params[cursor] not in ids:
                known = self._objects.get(params[cursor]) or next(
                    (e for e in self.events if e["id"] == params[cursor]), None
                )
                if known is None:
                    raise _Refused(
                        rules.invalid(
                            f"No such object: '{params[cursor]}'",
                            code="resource_missing",
                            param=cursor,
                        )
                    )
        if "starting_after" in params and params["starting_after"] in ids:
            items = items[ids.index(params["starting_after"]) + 1 :]
        elif "ending_before" in params and params["ending_before"] in ids:
            end = ids.index(params["ending_before"])
            items = items[max(0, end - limit) : end]
        page = [copy.deepcopy(i) for i in items[:limit]]
        return 200, fake.list_of(url, page, has_more=len(items) > limit)

    def _platform_only(self, call: _Call) -> None:
        """Objects the fake keeps on the platform only: refuse to make them elsewhere."""
        if call.account is not None:
            raise _Refused(
                rules.invalid(
                    f"FakeStripe does not model {call.method} {call.path} on a connected "
                    f"account (Stripe-Account: {call.account}).",
                    code="fake_unsupported",
                )
            )

    # --- Helpers for tests: the world outside the API -------------------------------------------

    def add_account(
        self, *, email: str = "seller@example.com", country: str = "US", onboarded: bool = True
    ) -> str:
        """An Express account with ``transfers`` requested, as ``POST /v1/accounts`` makes it."""
        account = self._new_account(
            email=email,
            country=country,
            type_="express",
            transfers_requested=True,
            interval="manual",
            metadata={},
        )
        if onboarded:
            self._onboard(account)
        return str(account["id"])

    def complete_onboarding(self, account_id: str) -> dict[str, Any]:
        """The seller finished Stripe's onboarding; emits ``account.updated``.

        A recipient (``transfers`` only) account gets payouts and transfers, never
        charges (https://docs.stripe.com/connect/service-agreement-types).
        """
        account = self._objects[account_id]
        previous = {
            "capabilities": copy.deepcopy(account["capabilities"]),
            "details_submitted": account["details_submitted"],
            "payouts_enabled": account["payouts_enabled"],
        }
        self._onboard(account)
        return self._emit("account.updated", account, account=account_id, previous=previous)

    def succeed_payment(self, payment_intent_id: str, *, fee: int = 0) -> dict[str, Any]:
        """The customer paid: a charge, its balance transaction, funds available on the
        platform (amount − fee), and ``payment_intent.succeeded``. Returns the intent.
        A processing payment (a bank debit, ``process_payment``) settles its pending
        charge."""
        intent = self._objects[payment_intent_id]
        if intent["status"] in ("succeeded", "canceled"):
            raise ValueError(f"{payment_intent_id} is already {intent['status']}.")
        amount, currency = intent["amount"], intent["currency"]
        pending = intent["latest_charge"] if intent["status"] == "processing" else None
        charge_id = pending or self._new_id("ch")
        txn_id = self._balance_transaction(
            None, "charge", amount, currency, charge_id, fee=fee, category="charge"
        )
        if pending:
            self._objects[pending].update(
                status="succeeded", paid=True, captured=True, balance_transaction=txn_id
            )
        else:
            self._store(
                fake.charge(
                    id=charge_id,
                    amount=amount,
                    amount_captured=amount,
                    balance_transaction=txn_id,
                    created=self._created(),
                    currency=currency,
                    metadata=copy.deepcopy(intent["metadata"]),
                    payment_intent=payment_intent_id,
                    payment_method_details={"type": "card", "card": {"last4": "4242"}},
                    refunded=False,
                    transfer_group=intent["transfer_group"],
                ),
                None,
            )
        intent.update(status="succeeded", amount_received=amount, latest_charge=charge_id)
        self._credit(None, currency, amount - fee)
        self._emit("payment_intent.succeeded", intent)
        return copy.deepcopy(intent)

    def process_payment(
        self, payment_intent_id: str, *, method: str = "sepa_debit"
    ) -> dict[str, Any]:
        """The customer confirmed a delayed-notification method (a SEPA or ACH debit): a
        pending charge with no balance transaction yet, the intent ``processing``, and
        ``payment_intent.processing`` (https://docs.stripe.com/payments/sepa-debit/accept-a-payment).
        It later ``succeed_payment`` or ``fail_payment``. Returns the intent."""
        intent = self._objects[payment_intent_id]
        if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
            raise ValueError(f"{payment_intent_id} is {intent['status']}.")
        charge_id = self._new_id("ch")
        payment_method = self._new_id("pm")
        self._store(
            fake.charge(
                id=charge_id,
                amount=intent["amount"],
                amount_captured=intent["amount"],
                balance_transaction=None,
                captured=True,
                created=self._created(),
                currency=intent["currency"],
                metadata=copy.deepcopy(intent["metadata"]),
                paid=False,
                payment_intent=payment_intent_id,
                payment_method=payment_method,
                payment_method_details={"type": method, method: {"last4": "3000"}},
                refunded=False,
                status="pending",
                transfer_group=intent["transfer_group"],
            ),
            None,
        )
        self._payment_methods[payment_method] = method
        intent.update(
            status="processing",
            latest_charge=charge_id,
            payment_method=payment_method,
            last_payment_error=None,
        )
        self._emit("payment_intent.processing", intent)
        return copy.deepcopy(intent)

    def fail_payment(
        self,
        payment_intent_id: str,
        *,
        message: str = "The customer's account has insufficient funds to cover this payment.",
        code: str = "insufficient_funds",
    ) -> dict[str, Any]:
        """A processing debit fails days later: its charge fails, the intent goes back to
        ``requires_payment_method`` with ``last_payment_error`` (which carries the
        payment method, with its ``type``), and ``payment_intent.payment_failed``."""
        intent = self._objects[payment_intent_id]
        if intent["status"] != "processing":
            raise ValueError(f"{payment_intent_id} is {intent['status']}, not processing.")
        self._objects[intent["latest_charge"]].update(
            status="failed", failure_code=code, failure_message=message
        )
        payment_method = intent["payment_method"]
        intent.update(
            status="requires_payment_method",
            payment_method=None,
            last_payment_error={
                "code": code,
                "message": message,
                "type": "invalid_request_error",
                "payment_method": {
                    "id": payment_method,
                    "object": "payment_method",
                    "type": self._payment_methods[payment_method],
                },
            },
        )
        self._emit("payment_intent.payment_failed", intent)
        return copy.deepcopy(intent)

    def credit_platform(self, currency: str, amount: int) -> None:
        """Add ``amount`` (negative to take) to the platform's available balance."""
        self._credit(None, currency.lower(), amount)

    def credit_account(self, account_id: str, currency: str, amount: int) -> None:
        """Add ``amount`` to a connected account's available balance."""
        self._credit(account_id, currency.lower(), amount)

    def refuse_payouts(
        self,
        account_id: str,
        code: str = "no_external_account",
        message: str = "The account has no bank account to pay out to.",
    ) -> None:
        """Make creating a payout on ``account_id`` answer 400 with ``code``."""
        self._payout_refusals[account_id] = (code, message)

    def allow_payouts(self, account_id: str) -> None:
        self._payout_refusals.pop(account_id, None)

    def payout_paid(self, payout_id: str) -> dict[str, Any]:
        """The bank accepted the payout; emits ``payout.paid`` on its account."""
        payout = self._objects[payout_id]
        if payout["status"] not in ("pending", "in_transit"):
            raise ValueError(f"{payout_id} is {payout['status']}, not on its way.")
        previous = {"status": payout["status"]}
        payout["status"] = "paid"
        return self._emit("payout.paid", payout, account=self._owners[payout_id], previous=previous)

    def payout_failed(
        self,
        payout_id: str,
        code: str = "account_closed",
        message: str = "The bank account has been closed.",
    ) -> dict[str, Any]:
        """The payout failed, paid or not (https://docs.stripe.com/api/payouts/object):
        its money returns to the account's available balance; emits ``payout.failed``."""
        payout = self._objects[payout_id]
        if payout["status"] in ("failed", "canceled"):
            raise ValueError(f"{payout_id} is already {payout['status']}.")
        owner = self._owners[payout_id]
        previous = {"status": payout["status"]}
        txn_id = self._balance_transaction(
            owner, "payout_failure", payout["amount"], payout["currency"], payout_id
        )
        self._credit(owner, payout["currency"], payout["amount"])
        payout.update(
            status="failed",
            failure_code=code,
            failure_message=message,
            failure_balance_transaction=txn_id,
        )
        return self._emit("payout.failed", payout, account=owner, previous=previous)

    # --- Reading the state --------------------------------------------------------------------

    def get(self, object_id: str) -> dict[str, Any]:
        """A copy of any object the fake keeps, by id."""
        return copy.deepcopy(self._objects[object_id])

    def objects(self, kind: str, *, account: str | None = None) -> list[dict[str, Any]]:
        """Copies of the ``kind`` objects (``"transfer"``, ``"payout"``...) of an account,
        newest first."""
        return [copy.deepcopy(o) for o in self._owned(kind, account)]

    def available(self, currency: str, account: str | None = None) -> int:
        """The available balance of ``account`` (the platform by default) in ``currency``."""
        return self._available.get(account, {}).get(currency.lower(), 0)

    def events_for(self, account: str | None) -> list[dict[str, Any]]:
        """The events of one account (None: the platform's own), oldest first."""
        return [e for e in self.events if e.get("account") == account]

    def signed_delivery(
        self, event: dict[str, Any], endpoint: str = "platform", *, timestamp: int | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """``(payload, headers)`` of a webhook delivery of ``event`` to our endpoint.

        Signed with the endpoint's secret by ``stripe_fake.sign``; the timestamp
        is the real time by default, as the receiver checks it against its clock.
        """
        secrets = {"platform": fake.WEBHOOK_SECRET, "connect": fake.CONNECT_WEBHOOK_SECRET}
        if endpoint not in secrets:
            raise ValueError(f"Unknown webhook endpoint {endpoint!r}.")
        payload = json.dumps(event).encode()
        signature = fake.sign(payload, secrets[endpoint], timestamp=timestamp)
        return payload, {"Stripe-Signature": signature, "Content-Type": "application/json"}

    def client(self, **options: Any) -> stripe.StripeClient:
        """A ``stripe.StripeClient`` on this fake, for calls the adapter has no method for."""
        options.setdefault("base_addresses", {"api": fake.API_BASE})
        options.setdefault("max_network_retries", 2)
        return stripe.StripeClient(fake.SECRET_KEY, http_client=self, **options)

    # --- Accounts -------------------------------------------------------------------------------

    def _new_account(
        self,
        *,
        email: str | None,
        country: str,
        type_: str,
        transfers_requested: bool,
        interval: str,
        metadata: dict[str, str],
    ) -> dict[str, Any]:
        country = country.upper()
        currency = "eur" if country in _EURO_COUNTRIES else _DEFAULT_CURRENCY.get(country, "usd")
        account = fake.account(
            id=self._new_id("acct"),
            capabilities={"transfers": "inactive"} if transfers_requested else {},
            country=country,
            created=self._created(),
            default_currency=currency,
            email=email,
            metadata=metadata,
            type=type_,
        )
        account["settings"]["payouts"]["schedule"]["interval"] = interval
        self._store(account, None)
        self._available[account["id"]] = {}
        self._pending[account["id"]] = {}
        return account

    def _onboard(self, account: dict[str, Any]) -> None:
        if "transfers" in account["capabilities"]:
            account["capabilities"]["transfers"] = "active"
        account.update(details_submitted=True, payouts_enabled=True, charges_enabled=False)
        requirements = account["requirements"]
        requirements.update(currently_due=[], eventually_due=[], past_due=[], disabled_reason=None)

    def _account_create(self, call: _Call) -> Refusal:
        self._platform_only(call)
        p = call.params
        account = self._new_account(
            email=p.get("email"),
            country=p.get("country", "US"),
            type_=p.get("type", "express"),
            transfers_requested=p.get("capabilities[transfers][requested]") == "true",
            interval=p.get("settings[payouts][schedule][interval]", "daily"),
            metadata=_metadata(p),
        )
        return 200, copy.deepcopy(account)

    def _account_get(self, call: _Call) -> Refusal:
        account = self._objects.get(call.object_id or "")
        # An account can read itself through the header (https://docs.stripe.com/connect/authentication).
        if (
            account is None
            or account.get("object") != "account"
            or call.account not in (None, call.object_id)
        ):
            raise _Refused(rules.resource_missing("account", call.object_id or ""))
        return 200, self._expand(account, call.expand())

    def _account_link_create(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/account_links/create
        self._platform_only(call)
        account_id = call.params["account"]
        self._param_object("account", account_id, "account")
        if call.params["type"] not in ("account_onboarding", "account_update"):
            raise _Refused(rules.invalid(f"Invalid type: {call.params['type']}", param="type"))
        token = self._new_id("link")
        return 200, fake.account_link(
            created=self._created(),
            expires_at=self._created() + ACCOUNT_LINK_TTL_SECONDS,
            url=f"https://connect.stripe.com/setup/e/{account_id}/{token}",
        )

    # --- Payments and refunds --------------------------------------------------------------------

    def _payment_intent_create(self, call: _Call) -> Refusal:
        self._platform_only(call)
        p = call.params
        intent_id = self._new_id("pi")
        automatic = (
            {
                "allow_redirects": "always",
                "enabled": p["automatic_payment_methods[enabled]"] == "true",
            }
            if "automatic_payment_methods[enabled]" in p
            else None
        )
        intent = fake.payment_intent(
            id=intent_id,
            amount=int(p["amount"]),
            automatic_payment_methods=automatic,
            client_secret=f"{intent_id}_secret_fake",
            created=self._created(),
            currency=p["currency"].lower(),
            description=p.get("description"),
            metadata=_metadata(p),
            # With automatic payment methods, every method enabled on the account.
            payment_method_types=(
                ["card", "sepa_debit", "us_bank_account"] if automatic else ["card"]
            ),
            receipt_email=p.get("receipt_email"),
            status="requires_payment_method",
            transfer_group=p.get("transfer_group"),
        )
        self._store(intent, None)
        return 200, copy.deepcopy(intent)

    def _payment_intent_get(self, call: _Call) -> Refusal:
        intent = self._find("payment_intent", call.object_id, call.account)
        return 200, self._expand(intent, call.expand())

    def _payment_intent_cancel(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/payment_intents/cancel: not once it succeeded, nor
        # while a bank debit is processing.
        intent = self._find("payment_intent", call.object_id, call.account)
        if intent["status"] in ("succeeded", "canceled", "processing"):
            raise _Refused(
                rules.invalid(
                    f"You cannot cancel this PaymentIntent because it has a status of "
                    f"{intent['status']}.",
                    code="payment_intent_unexpected_state",
                )
            )
        intent.update(
            status="canceled",
            canceled_at=self._created(),
            cancellation_reason=call.params.get("cancellation_reason"),
        )
        self._emit("payment_intent.canceled", intent, call=call)
        return 200, self._expand(intent, call.expand())

    def _refund_create(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/refunds/create
        self._platform_only(call)
        p = call.params
        if "payment_intent" in p:
            intent = self._param_object("payment_intent", p["payment_intent"], "payment_intent")
            charge_id = intent["latest_charge"]
            if charge_id is None:
                raise _Refused(
                    rules.invalid(
                        f"PaymentIntent {intent['id']} has no successful charge to refund.",
                        code="charge_not_refundable",
                        param="payment_intent",
                    )
                )
            charge = self._objects[charge_id]
        elif "charge" in p:
            charge = self._param_object("charge", p["charge"], "charge")
        else:
            raise _Refused(
                rules.invalid(
                    "Missing required param: payment_intent or charge.",
                    code="parameter_missing",
                    param="payment_intent",
                )
            )
        left = charge["amount"] - charge["amount_refunded"]
        if left == 0:
            raise _Refused(
                rules.invalid(
                    f"Charge {charge['id']} has already been refunded.",
                    code="charge_already_refunded",
                )
            )
        amount = int(p.get("amount", left))
        if amount > left:
            raise _Refused(
                rules.invalid(
                    f"Refund amount ({amount}) is greater than the unrefunded amount on the "
                    f"charge ({left}).",
                    code="amount_too_large",
                    param="amount",
                )
            )
        refund_id = self._new_id("re")
        currency = charge["currency"]
        txn_id = self._balance_transaction(None, "refund", -amount, currency, refund_id)
        refund = fake.refund(
            id=refund_id,
            amount=amount,
            balance_transaction=txn_id,
            charge=charge["id"],
            created=self._created(),
            currency=currency,
            metadata=_metadata(p),
            payment_intent=charge["payment_intent"],
            reason=p.get("reason"),
            status="succeeded",
        )
        self._store(refund, None)
        self._credit(None, currency, -amount)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] == charge["amount"]
        self._emit("charge.refunded", charge, call=call)
        self._emit("refund.created", refund, call=call)
        return 200, self._expand(refund, call.expand())

    # --- Transfers and reversals -----------------------------------------------------------------

    def _transfer_create(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/transfers/create
        self._platform_only(call)
        p = call.params
        if "amount" not in p:
            raise _Refused(
                rules.invalid(
                    "Missing required param: amount.", code="parameter_missing", param="amount"
                )
            )
        amount, currency = int(p["amount"]), p["currency"].lower()
        destination = self._param_object("account", p["destination"], "destination")
        capability = destination["capabilities"].get("transfers", "not requested")
        if capability != "active":
            # https://docs.stripe.com/connect/account-capabilities#transfers
            raise _Refused(
                rules.invalid(
                    f"Your destination account needs to have the transfers capability "
                    f"active to receive transfers; {destination['id']}'s is {capability}.",
                    code="insufficient_capabilities_for_transfer",
                    param="destination",
                )
            )
        source = p.get("source_transaction")
        if source is not None:
            self._param_object("charge", source, "source_transaction")
        elif self.available(currency) < amount:
            # https://docs.stripe.com/api/transfers/create: the balance must cover it.
            raise _Refused(
                rules.invalid(
                    f"You have insufficient available funds in your Stripe account "
                    f"({self.available(currency)} {currency}) for a transfer of {amount}.",
                    code="balance_insufficient",
                )
            )
        transfer_id = self._new_id("tr")
        payment_id = self._new_id("py")
        txn_id = self._balance_transaction(None, "transfer", -amount, currency, transfer_id)
        payment_txn = self._balance_transaction(
            destination["id"], "payment", amount, currency, payment_id
        )
        # The connected account's side: a payment from the platform.
        self._store(
            {
                "id": payment_id,
                "object": "charge",
                "amount": amount,
                "amount_refunded": 0,
                "balance_transaction": payment_txn,
                "created": self._created(),
                "currency": currency,
                "source_transfer": transfer_id,
                "status": "succeeded",
            },
            destination["id"],
        )
        transfer = fake.transfer(
            id=transfer_id,
            amount=amount,
            amount_reversed=0,
            balance_transaction=txn_id,
            created=self._created(),
            currency=currency,
            description=p.get("description"),
            destination=destination["id"],
            destination_payment=payment_id,
            metadata=_metadata(p),
            reversals=fake.list_of(f"/v1/transfers/{transfer_id}/reversals", []),
            reversed=False,
            source_transaction=source,
            transfer_group=p.get("transfer_group"),
        )
        transfer["reversals"]["total_count"] = 0
        self._store(transfer, None)
        self._credit(None, currency, -amount)
        self._credit(destination["id"], currency, amount)
        self._emit("transfer.created", transfer, call=call)
        return 200, self._expand(transfer, call.expand())

    def _transfer_list(self, call: _Call) -> Refusal:
        items = self._owned("transfer", call.account)
        for name in ("transfer_group", "destination"):
            if name in call.params:
                items = [t for t in items if t[name] == call.params[name]]
        return self._expanded_page(call, "/v1/transfers", items)

    def _transfer_get(self, call: _Call) -> Refusal:
        transfer = self._find("transfer", call.object_id, call.account)
        return 200, self._expand(transfer, call.expand())

    def _reversal_create(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/transfer_reversals/create
        transfer = self._find("transfer", call.object_id, call.account)
        left = transfer["amount"] - transfer["amount_reversed"]
        amount = int(call.params.get("amount", left))
        currency, destination = transfer["currency"], transfer["destination"]
        if amount > left:
            raise _Refused(
                rules.invalid(
                    f"Transfer {transfer['id']} has {left} {currency} left to reverse; "
                    f"{amount} is more.",
                    code="amount_too_large",
                    param="amount",
                )
            )
        if self.available(currency, destination) < amount:
            # https://docs.stripe.com/api/transfer_reversals: only if the destination
            # account's balance covers the reversal.
            raise _Refused(
                rules.invalid(
                    f"Insufficient funds in the destination account {destination} "
                    f"({self.available(currency, destination)} {currency}) to reverse {amount}.",
                    code="balance_insufficient",
                )
            )
        reversal_id = self._new_id("trr")
        txn_id = self._balance_transaction(None, "transfer_refund", amount, currency, reversal_id)
        self._balance_transaction(
            destination, "payment_refund", -amount, currency, transfer["destination_payment"]
        )
        reversal = fake.transfer_reversal(
            id=reversal_id,
            amount=amount,
            balance_transaction=txn_id,
            created=self._created(),
            currency=currency,
            destination_payment_refund=self._new_id("pyr"),
            metadata=_metadata(call.params),
            transfer=transfer["id"],
        )
        self._store(reversal, None)
        self._credit(destination, currency, -amount)
        self._credit(None, currency, amount)
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        reversals = transfer["reversals"]
        reversals["data"].insert(0, copy.deepcopy(reversal))
        reversals["total_count"] = len(reversals["data"])
        self._emit("transfer.reversed", transfer, call=call)
        return 200, self._expand(reversal, call.expand())

    def _reversal_list(self, call: _Call) -> Refusal:
        transfer = self._find("transfer", call.object_id, call.account)
        items = [
            r for r in self._owned("transfer_reversal", None) if r["transfer"] == transfer["id"]
        ]
        return self._expanded_page(call, f"/v1/transfers/{transfer['id']}/reversals", items)

    # --- Payouts and balances --------------------------------------------------------------------

    def _payout_create(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/payouts/create, on the Stripe-Account's balance.
        owner, p = call.account, call.params
        amount, currency = int(p["amount"]), p["currency"].lower()
        if owner is not None:
            if owner in self._payout_refusals:
                code, message = self._payout_refusals[owner]
                raise _Refused(rules.invalid(message, code=code))
            if not self._objects[owner]["payouts_enabled"]:
                raise _Refused(
                    rules.invalid(
                        f"Payouts are not enabled on {owner} yet.", code="payouts_not_allowed"
                    )
                )
        if self.available(currency, owner) < amount:
            raise _Refused(
                rules.invalid(
                    f"You have insufficient funds in your Stripe account for this payout: "
                    f"{self.available(currency, owner)} {currency} available, {amount} asked.",
                    code="balance_insufficient",
                )
            )
        payout_id = self._new_id("po")
        txn_id = self._balance_transaction(owner, "payout", -amount, currency, payout_id)
        payout = fake.payout(
            id=payout_id,
            amount=amount,
            # https://docs.stripe.com/api/payouts/object#payout_object-arrival_date:
            # midnight UTC of the day the bank should have it.
            arrival_date=(self._created() // 86400 + 2) * 86400,
            balance_transaction=txn_id,
            created=self._created(),
            currency=currency,
            destination=self._bank_account(owner, currency)["id"],
            description=p.get("description"),
            metadata=_metadata(p),
            method=p.get("method", "standard"),
            statement_descriptor=p.get("statement_descriptor"),
            status="pending",
        )
        self._store(payout, owner)
        self._credit(owner, currency, -amount)
        self._emit("payout.created", payout, account=owner, call=call)
        return 200, self._expand(payout, call.expand())

    def _bank_account(self, owner: str | None, currency: str) -> dict[str, Any]:
        """The account's external bank account (Stripe's test account 000123456789),
        made when it is first paid to: https://docs.stripe.com/api/external_account_bank_accounts/object."""
        bank_id = f"ba_{owner or 'platform'}"
        if bank_id not in self._objects:
            self._store(
                {
                    "id": bank_id,
                    "object": "bank_account",
                    "account": owner,
                    "bank_name": "STRIPE TEST BANK",
                    "country": "US",
                    "currency": currency,
                    "last4": "6789",
                    "routing_number": "110000000",
                    "status": "new",
                },
                owner,
            )
        return self._objects[bank_id]

    def _payout_list(self, call: _Call) -> Refusal:
        items = self._owned("payout", call.account)
        if "status" in call.params:
            items = [po for po in items if po["status"] == call.params["status"]]
        return self._expanded_page(call, "/v1/payouts", items)

    def _payout_get(self, call: _Call) -> Refusal:
        payout = self._find("payout", call.object_id, call.account)
        return 200, self._expand(payout, call.expand())

    def _balance_get(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/balance/balance_object
        owner = call.account
        available = self._available.get(owner, {})
        pending = self._pending.get(owner, {})
        default = self._objects[owner]["default_currency"] if owner else "usd"
        currencies = sorted(set(available) | set(pending)) or [default]
        return 200, {
            "object": "balance",
            "available": [
                {"amount": available.get(c, 0), "currency": c, "source_types": {"card": 0}}
                for c in currencies
            ],
            "livemode": False,
            "pending": [
                {"amount": pending.get(c, 0), "currency": c, "source_types": {"card": 0}}
                for c in currencies
            ],
        }

    # --- Events and reporting --------------------------------------------------------------------

    def _event_list(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/events/list: the requesting account's events,
        # newest first, ``type`` with ``*`` wildcards or ``types[]``.
        items = sorted(
            self.events_for(call.account),
            key=lambda e: (e["created"], self._order[e["id"]]),
            reverse=True,
        )
        if "type" in call.params:
            items = [e for e in items if fnmatch.fnmatchcase(e["type"], call.params["type"])]
        types = [v for k, v in call.params.items() if rules.normalize(k) == "types[]"]
        if types:
            items = [e for e in items if e["type"] in types]
        return self._page("/v1/events", items, call.params)

    def _balance_transaction_list(self, call: _Call) -> Refusal:
        # https://docs.stripe.com/api/balance_transactions/list
        items = self._owned("balance_transaction", call.account)
        for name in ("type", "source", "currency"):
            if name in call.params:
                items = [t for t in items if t[name] == call.params[name]]
        return self._expanded_page(call, "/v1/balance_transactions", items)

    def _expanded_page(self, call: _Call, url: str, items: list[dict[str, Any]]) -> Refusal:
        status, page = self._page(url, items, call.params)
        return status, self._expand(page, call.expand())


def _metadata(params: Mapping[str, str]) -> dict[str, str]:
    """``metadata[key]=value`` pairs; an empty value unsets (https://docs.stripe.com/api/metadata)."""
    return {
        name[len("metadata[") : -1]: value
        for name, value in params.items()
        if rules.normalize(name) == "metadata[*]" and value != ""
    }


def _default_error_body(status: int) -> dict[str, Any]:
    """The body of an injected failure without one (https://docs.stripe.com/api/errors)."""
    if status >= 500:
        return fake.api_error_body()
    if status == 402:
        return fake.card_declined_body()
    if status == 429:
        return fake.rate_limit_body()
    return fake.error_body("invalid_request_error", f"Injected failure (HTTP {status}).")


def processor_on(server: FakeStripe) -> Any:
    """The real ``StripeProcessor``, talking to ``server`` with the fake's keys."""
    from payments.processors.stripe import StripeProcessor

    return StripeProcessor(
        secret_key=fake.SECRET_KEY,
        webhook_secret=fake.WEBHOOK_SECRET,
        connect_webhook_secret=fake.CONNECT_WEBHOOK_SECRET,
        api_base=fake.API_BASE,
        http_client=server,
    )


def use_fake_stripe(settings: Any, monkeypatch: Any, *, now: float) -> FakeStripe:
    """Make Stripe the site's processor, on a new strict fake; returns the fake."""
    server = FakeStripe(now=now)
    processor = processor_on(server)
    settings.PAYMENTS_PROCESSOR = "stripe"
    monkeypatch.setattr("payments.processors._build", lambda name: processor)
    monkeypatch.setattr("stripe.enable_telemetry", False)
    return server
