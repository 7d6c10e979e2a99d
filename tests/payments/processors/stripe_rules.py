"""What real Stripe refuses before it runs a request, as pure data and functions.

Used by both fakes of the tests (the queue-based ``RecordingHTTPClient`` in
``stripe_fake.py`` and the stateful ``FakeStripe`` in ``stripe_server.py``), so a
request the adapter should never send fails in every test, not only in those
written for it. ``check_request`` answers ``(status, Stripe error body)`` or
``None``; nothing here keeps state.

Rules, each with the page of Stripe's documentation it comes from:

- Only the endpoints below exist for the fakes; any other one answers 404
  ``invalid_request_error`` ("Unrecognized request URL"), so an unexpected call
  fails loudly (https://docs.stripe.com/api/errors: 404, the requested
  resource doesn't exist).
- Every request carries a secret or restricted key as a bearer token, else 401
  ``authentication_error`` (https://docs.stripe.com/api/authentication).
- Per endpoint, the form parameters the API reference lists (flattened the way
  form encoding sends them: ``metadata[key]``, ``expand[]``,
  ``capabilities[transfers][requested]``, ``created[gte]``):
  - one it does not list → 400 ``parameter_unknown``, ``param`` its name;
  - a required one left out → 400 ``parameter_missing``;
  - one sent as an empty string → 400 ``parameter_invalid_empty``, except
    ``metadata`` and ``metadata[key]``, where an empty value unsets
    (https://docs.stripe.com/api/metadata), and the parameters an update
    endpoint documents as unsettable (none of the endpoints here);
  - ``amount``/``limit``/timestamps not an integer → 400
    ``parameter_invalid_integer``; an ``amount`` under 1 → 400
    ``amount_too_small``; a ``limit`` outside 1..100 → 400
    (https://docs.stripe.com/api/pagination);
  - booleans other than ``true``/``false`` → 400 ``parameter_invalid_boolean``.
  Codes: https://docs.stripe.com/error-codes.
- An ``Idempotency-Key`` longer than 255 characters → 400
  (https://docs.stripe.com/api/idempotent_requests).
- A ``Stripe-Account`` header that is not an account id (``acct_…``) → 400
  ``account_invalid`` (https://docs.stripe.com/error-codes, and
  https://docs.stripe.com/api/connected-accounts for the header itself).
  ``CONNECTED_ENDPOINTS`` are those whose objects the fakes keep per account:
  with the header they act on that connected account, without it on the
  platform; an object of another account answers 404 ``resource_missing``
  (the check needs state, so ``FakeStripe`` makes it with ``resource_missing``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# --- Sources --------------------------------------------------------------------------

DOCS_ERRORS = "https://docs.stripe.com/api/errors"
DOCS_ERROR_CODES = "https://docs.stripe.com/error-codes"
DOCS_METADATA = "https://docs.stripe.com/api/metadata"
DOCS_PAGINATION = "https://docs.stripe.com/api/pagination"
DOCS_EXPAND = "https://docs.stripe.com/api/expanding_objects"
DOCS_IDEMPOTENCY = "https://docs.stripe.com/api/idempotent_requests"
DOCS_CONNECTED_ACCOUNTS = "https://docs.stripe.com/api/connected-accounts"

# Stripe's own limit on an idempotency key (DOCS_IDEMPOTENCY).
IDEMPOTENCY_KEY_MAX_LENGTH = 255
# Largest page of a list endpoint (DOCS_PAGINATION).
LIST_LIMIT_MAX = 100

# Parameters whose value must be an integer, and booleans (form-encoded as strings).
_INTEGER_PARAMS = frozenset(
    {"amount", "limit", "created", "created[gt]", "created[gte]", "created[lt]", "created[lte]"}
)
_BOOLEAN_PARAMS = frozenset(
    {"capabilities[transfers][requested]", "automatic_payment_methods[enabled]"}
)
# An empty value unsets metadata (DOCS_METADATA); nothing else may be sent empty here.
_EMPTY_ALLOWED = frozenset({"metadata", "metadata[*]"})

_CREATED = ("created", "created[gt]", "created[gte]", "created[lt]", "created[lte]")
_LIST = ("limit", "starting_after", "ending_before", "expand[]")
_METADATA = ("metadata", "metadata[*]")


@dataclass(frozen=True)
class Endpoint:
    """One endpoint of Stripe's API reference, as the fakes serve it."""

    method: str
    pattern: str  # "/v1/transfers/{id}/reversals"
    allowed: frozenset[str]
    required: frozenset[str] = frozenset()
    # Parameters an update documents as unsettable with "" (none of ours).
    unsettable: frozenset[str] = frozenset()
    source: str = ""
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pattern = "^" + re.sub(r"\\\{id\\\}", r"(?P<id>[^/]+)", re.escape(self.pattern)) + "$"
        object.__setattr__(self, "regex", re.compile(pattern))

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.pattern)


def _endpoint(
    method: str,
    pattern: str,
    allowed: tuple[str, ...],
    *,
    required: tuple[str, ...] = (),
    source: str,
) -> Endpoint:
    return Endpoint(
        method=method,
        pattern=pattern,
        allowed=frozenset(allowed) | frozenset(required),
        required=frozenset(required),
        source=source,
    )


ENDPOINTS: tuple[Endpoint, ...] = (
    # https://docs.stripe.com/api/accounts/create: nothing is required (the
    # controller properties can stand in for ``type``).
    _endpoint(
        "POST",
        "/v1/accounts",
        (
            "type",
            "country",
            "email",
            "capabilities[transfers][requested]",
            "settings[payouts][schedule][interval]",
            "business_type",
            *_METADATA,
            "expand[]",
        ),
        source="https://docs.stripe.com/api/accounts/create",
    ),
    _endpoint(
        "GET",
        "/v1/accounts/{id}",
        ("expand[]",),
        source="https://docs.stripe.com/api/accounts/retrieve",
    ),
    _endpoint(
        "POST",
        "/v1/account_links",
        ("refresh_url", "return_url", "collect", "expand[]"),
        required=("account", "type"),
        source="https://docs.stripe.com/api/account_links/create",
    ),
    _endpoint(
        "POST",
        "/v1/payment_intents",
        (
            "transfer_group",
            "receipt_email",
            "description",
            "automatic_payment_methods[enabled]",
            "capture_method",
            "customer",
            *_METADATA,
            "expand[]",
        ),
        required=("amount", "currency"),
        source="https://docs.stripe.com/api/payment_intents/create",
    ),
    _endpoint(
        "GET",
        "/v1/payment_intents/{id}",
        ("client_secret", "expand[]"),
        source="https://docs.stripe.com/api/payment_intents/retrieve",
    ),
    _endpoint(
        "POST",
        "/v1/payment_intents/{id}/cancel",
        ("cancellation_reason", "expand[]"),
        source="https://docs.stripe.com/api/payment_intents/cancel",
    ),
    # Either ``charge`` or ``payment_intent`` names what to refund; the reference
    # marks neither required, so ``FakeStripe`` checks that one is there.
    _endpoint(
        "POST",
        "/v1/refunds",
        ("payment_intent", "charge", "amount", "reason", *_METADATA, "expand[]"),
        source="https://docs.stripe.com/api/refunds/create",
    ),
    # ``amount`` is not marked required by the reference; ``FakeStripe`` still
    # answers parameter_missing without it, since it only models a fixed amount.
    _endpoint(
        "POST",
        "/v1/transfers",
        (
            "amount",
            "transfer_group",
            "source_transaction",
            "source_type",
            "description",
            *_METADATA,
            "expand[]",
        ),
        required=("currency", "destination"),
        source="https://docs.stripe.com/api/transfers/create",
    ),
    _endpoint(
        "GET",
        "/v1/transfers",
        ("transfer_group", "destination", *_CREATED, *_LIST),
        source="https://docs.stripe.com/api/transfers/list",
    ),
    _endpoint(
        "GET",
        "/v1/transfers/{id}",
        ("expand[]",),
        source="https://docs.stripe.com/api/transfers/retrieve",
    ),
    _endpoint(
        "POST",
        "/v1/transfers/{id}/reversals",
        ("amount", "description", "refund_application_fee", *_METADATA, "expand[]"),
        source="https://docs.stripe.com/api/transfer_reversals/create",
    ),
    _endpoint(
        "GET",
        "/v1/transfers/{id}/reversals",
        _LIST,
        source="https://docs.stripe.com/api/transfer_reversals/list",
    ),
    _endpoint(
        "POST",
        "/v1/payouts",
        (
            "description",
            "destination",
            "method",
            "source_type",
            "statement_descriptor",
            *_METADATA,
            "expand[]",
        ),
        required=("amount", "currency"),
        source="https://docs.stripe.com/api/payouts/create",
    ),
    _endpoint(
        "GET",
        "/v1/payouts",
        ("status", "destination", *_CREATED, *_LIST),
        source="https://docs.stripe.com/api/payouts/list",
    ),
    _endpoint(
        "GET",
        "/v1/payouts/{id}",
        ("expand[]",),
        source="https://docs.stripe.com/api/payouts/retrieve",
    ),
    _endpoint(
        "GET",
        "/v1/balance",
        ("expand[]",),
        source="https://docs.stripe.com/api/balance/balance_retrieve",
    ),
    _endpoint(
        "GET",
        "/v1/events",
        ("type", "types[]", "delivery_success", *_CREATED, *_LIST),
        source="https://docs.stripe.com/api/events/list",
    ),
    _endpoint(
        "GET",
        "/v1/balance_transactions",
        ("type", "source", "payout", "currency", *_CREATED, *_LIST),
        source="https://docs.stripe.com/api/balance_transactions/list",
    ),
)

# Endpoints acting on the account the Stripe-Account header names (the platform
# without it): payouts and balances are kept per account, and an account lists
# its own events and balance transactions only (DOCS_CONNECTED_ACCOUNTS,
# https://docs.stripe.com/connect/authentication).
CONNECTED_ENDPOINTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/v1/payouts"),
        ("GET", "/v1/payouts"),
        ("GET", "/v1/payouts/{id}"),
        ("GET", "/v1/balance"),
        ("GET", "/v1/events"),
        ("GET", "/v1/balance_transactions"),
    }
)

_ACCOUNT_ID = re.compile(r"^acct_[A-Za-z0-9]+$")
_INDEX = re.compile(r"\[\d+\]")
_METADATA_KEY = re.compile(r"^metadata\[[^\[\]]+\]$")


# --- Errors -----------------------------------------------------------------------------


def error(
    status: int,
    type_: str,
    message: str,
    *,
    code: str | None = None,
    param: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` of a Stripe error, shaped as https://docs.stripe.com/api/errors."""
    body: dict[str, Any] = {"type": type_, "message": message}
    if code:
        body["code"] = code
        body["doc_url"] = f"{DOCS_ERROR_CODES}/{code.replace('_', '-')}"
    if param:
        body["param"] = param
    return status, {"error": body}


def invalid(
    message: str, *, code: str | None = None, param: str | None = None, status: int = 400
) -> tuple[int, dict[str, Any]]:
    return error(status, "invalid_request_error", message, code=code, param=param)


def resource_missing(kind: str, object_id: str, *, param: str = "id") -> tuple[int, dict[str, Any]]:
    """404 for an object that does not exist for the requesting account."""
    return invalid(
        f"No such {kind}: '{object_id}'", code="resource_missing", param=param, status=404
    )


# --- Looking up and checking -----------------------------------------------------------------


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A request header by name, whatever its case."""
    if not headers:
        return None
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), None)


def match(method: str, path: str) -> tuple[Endpoint, str | None] | None:
    """The endpoint serving ``method path`` and the ``{id}`` in the path, if any."""
    for endpoint in ENDPOINTS:
        if endpoint.method != method.upper():
            continue
        found = endpoint.regex.match(path)
        if found:
            return endpoint, found.groupdict().get("id")
    return None


def is_connected(endpoint: Endpoint) -> bool:
    return endpoint.key in CONNECTED_ENDPOINTS


def normalize(name: str) -> str:
    """``expand[0]`` → ``expand[]``; ``metadata[order_id]`` → ``metadata[*]``."""
    if _METADATA_KEY.match(name):
        return "metadata[*]"
    return _INDEX.sub("[]", name)


def check_request(
    method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str] | None
) -> tuple[int, dict[str, Any]] | None:
    """What Stripe would refuse before running the request: ``(status, body)``, else None.

    ``params`` are the form parameters: the body of a POST, the query of a GET.
    """
    method = method.upper()
    found = match(method, path)
    if found is None:
        # https://docs.stripe.com/api/errors: 404, the resource doesn't exist.
        return invalid(f"Unrecognized request URL ({method}: {path}).", status=404)
    endpoint, _ = found

    # https://docs.stripe.com/api/authentication: a secret (sk_) or restricted (rk_)
    # key as the bearer token.
    authorization = header(headers, "Authorization") or ""
    if not re.match(r"^Bearer (sk|rk)_(test|live)_\S+$", authorization):
        return error(401, "authentication_error", "You did not provide a valid API key.")

    # https://docs.stripe.com/error-codes (account_invalid): the header names an account.
    account = header(headers, "Stripe-Account")
    if account is not None and not _ACCOUNT_ID.match(account):
        return invalid(
            f"The Stripe-Account header must name an account (acct_...), not {account!r}.",
            code="account_invalid",
        )

    # DOCS_IDEMPOTENCY: keys are at most 255 characters.
    key = header(headers, "Idempotency-Key")
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        return invalid(
            f"Idempotency keys are at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters long.",
            param="Idempotency-Key",
        )

    return check_params(endpoint, params)


def check_params(
    endpoint: Endpoint, params: Mapping[str, str]
) -> tuple[int, dict[str, Any]] | None:
    """The parameter rules of one endpoint (see the module docstring)."""
    # DOCS_ERROR_CODES: parameter_unknown names the first parameter not in the reference.
    for name in params:
        if normalize(name) not in endpoint.allowed:
            return invalid(
                f"Received unknown parameter: {name}", code="parameter_unknown", param=name
            )
    # DOCS_ERROR_CODES: parameter_invalid_empty; DOCS_METADATA: "" unsets metadata.
    for name, value in params.items():
        normal = normalize(name)
        if value == "" and normal not in _EMPTY_ALLOWED and normal not in endpoint.unsettable:
            return invalid(
                f"You passed an empty string for '{name}'. Leave the parameter out instead.",
                code="parameter_invalid_empty",
                param=name,
            )
    # DOCS_ERROR_CODES: parameter_missing.
    for name in sorted(endpoint.required):
        if name not in params:
            return invalid(f"Missing required param: {name}.", code="parameter_missing", param=name)
    for name, value in params.items():
        refusal = _check_value(normalize(name), name, value)
        if refusal is not None:
            return refusal
    return None


def _check_value(normal: str, name: str, value: str) -> tuple[int, dict[str, Any]] | None:
    if normal in _INTEGER_PARAMS:
        if not re.fullmatch(r"-?\d+", value):
            return invalid(
                f"Invalid integer: {value}", code="parameter_invalid_integer", param=name
            )
        number = int(value)
        # DOCS_ERROR_CODES: amount_too_small; amounts are positive minor units.
        if normal == "amount" and number < 1:
            return invalid(
                "The amount must be a positive integer of minor units.",
                code="amount_too_small",
                param=name,
            )
        # DOCS_PAGINATION: limit is between 1 and 100.
        if normal == "limit" and not 1 <= number <= LIST_LIMIT_MAX:
            return invalid(
                f"limit must be between 1 and {LIST_LIMIT_MAX}.",
                code="parameter_invalid_integer",
                param=name,
            )
    if normal in _BOOLEAN_PARAMS and value not in ("true", "false"):
        return invalid(f"Invalid boolean: {value}", code="parameter_invalid_boolean", param=name)
    if normal == "currency" and not re.fullmatch(r"[A-Za-z]{3}", value):
        return invalid(f"Invalid currency: {value}", param=name)
    return None
