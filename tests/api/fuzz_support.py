"""What the API fuzzer (tests/api/test_fuzz.py) runs on: the published schema bound to
the WSGI app, with links for the stateful phase; the budget; the totals it reports;
and the fence around the webhook deliveries it causes.

The fuzzer registers webhook endpoints with whatever addresses it makes up (or reads
in earlier answers), asks for test pings, and its requests queue events that the
worker would deliver. Here every made-up host name resolves to one public stand-in,
the real address policy and transport judge and pin it, and only the last hop is
turned to a local receiver. The suite's network guard (tests/conftest.py) logs every
connection; ``FENCE`` gathers them over the session: all must stay on loopback.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import schemathesis

CI = bool(os.environ.get("CI"))

# Budget: the whole fuzz file within ~4 minutes in CI on PostgreSQL, under a minute locally.
# Stateless: generated requests per operation and role. Stateful: scenarios per role, each
# a chain of at most STATEFUL_STEPS requests that follow the schema's links.
# Malformed: requests that break the schema on purpose (negative mode), per operation.
if CI:
    STATELESS_EXAMPLES = {"operator": 10, "seller": 10, "customer": 5}
    MALFORMED_EXAMPLES = {"operator": 4, "seller": 4}
else:
    STATELESS_EXAMPLES = {"operator": 3, "seller": 3, "customer": 2}
    MALFORMED_EXAMPLES = {"operator": 1, "seller": 1}
STATEFUL_SCENARIOS = 40 if CI else 6
STATEFUL_STEPS = 12 if CI else 8

ROLES = ("operator", "seller", "customer")
STATEFUL_ROLES = ("operator", "seller", "customer")

# Every host name the fuzzer invents resolves here (example.com's address, a public one,
# so the address policy accepts it the way it would accept a real integrator's host).
PUBLIC_STAND_IN = "93.184.215.14"

TOTALS_FILE = Path(__file__).resolve().parents[2] / "var" / "fuzz-totals.json"


def published_schema():
    """The schema the API serves at /api/v1/schema/, loaded by schemathesis and bound
    to the WSGI app (no server, no network)."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    from marketplace.wsgi import application

    document = SchemaGenerator().get_schema(request=None, public=True)
    raw = json.loads(OpenApiJsonRenderer().render(document))
    loaded = schemathesis.openapi.from_dict(with_links(raw))
    loaded.app = application
    return loaded


METHODS = ("get", "post", "put", "patch", "delete")
# Collections whose members another operation also creates.
OTHER_CREATORS = {
    "/api/v1/orders/": [("/api/v1/cart/checkout/", "post", "201")],
    "/api/v1/refund-requests/": [
        ("/api/v1/orders/{id}/lines/{line_id}/refund-request/", "post", "201")
    ],
}


# A buyer's chains: what the product list shows goes into a cart or an order.
PRODUCT = "$response.body#/data/*/id"
BODY_LINKS = [
    (("/api/v1/products/", "get", "200"), ("/api/v1/cart/items/", "post"), {"product": PRODUCT}),
    (
        ("/api/v1/products/", "get", "200"),
        ("/api/v1/orders/", "post"),
        {"items": [{"product": PRODUCT}]},
    ),
    (("/api/v1/cart/items/", "post", "200"), ("/api/v1/cart/checkout/", "post"), {}),
]


def with_links(raw: dict[str, Any]) -> dict[str, Any]:
    """Add OpenAPI links for the stateful phase to the loaded schema (the published one
    is left as it is): from a collection's list (its first item) and its creation, and
    from any answer about one member, to every operation on that member
    (``/things/{id}/...``). Schemathesis infers more links on its own; these make sure
    the chains from creation and listing to the actions exist whatever it infers."""
    paths = raw["paths"]
    for collection in paths:
        if "{" in collection:
            continue
        members = [
            (path, method, operation)
            for path, item in paths.items()
            if path.startswith(collection + "{id}/") and path.count("{") == 1
            for method, operation in item.items()
            if method in METHODS
        ]
        if not members:
            continue
        sources = [(collection, "post", "201", "$response.body#/id")]
        sources += [
            (path, m, code, "$response.body#/id")
            for path, m, code in OTHER_CREATORS.get(collection, [])
        ]
        listed = _list_item_pointer(raw, paths[collection].get("get"))
        if listed:
            sources.append((collection, "get", "200", f"$response.body#{listed}/id"))
        for path, method, operation in members:
            if method in ("get", "put", "patch", "post") and _answers_object_with_id(
                raw, operation
            ):
                sources.append((path, method, "200", "$response.body#/id"))
        for path, method, code, pointer in sources:
            response = paths.get(path, {}).get(method, {}).get("responses", {}).get(code)
            if response is None:
                continue
            links = response.setdefault("links", {})
            for target_path, target_method, target in members:
                if (target_path, target_method) == (path, method):
                    continue
                links[f"fuzz_{target['operationId']}"] = {
                    "operationId": target["operationId"],
                    "parameters": {"path.id": pointer},
                }
    for (path, method, code), (target_path, target_method), body in BODY_LINKS:
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(code)
        target = paths.get(target_path, {}).get(target_method)
        if response is None or target is None:
            continue
        link: dict[str, Any] = {"operationId": target["operationId"]}
        if body:
            link["requestBody"] = body
        response.setdefault("links", {})[f"fuzz_{target['operationId']}"] = link
    return raw


def _resolve(raw: dict[str, Any], schema: dict[str, Any] | None) -> dict[str, Any]:
    while schema and "$ref" in schema:
        node: Any = raw
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema or {}


def _body_schema(
    raw: dict[str, Any], operation: dict[str, Any] | None, code: str
) -> dict[str, Any]:
    response = (operation or {}).get("responses", {}).get(code, {})
    return _resolve(raw, response.get("content", {}).get("application/json", {}).get("schema"))


def _list_item_pointer(raw: dict[str, Any], operation: dict[str, Any] | None) -> str | None:
    """``/data/*`` (or ``/results/*``, or ``/*``: any item) if the list answer holds
    items with an id."""
    body = _body_schema(raw, operation, "200")
    if body.get("type") == "array":
        return "/*" if "id" in _resolve(raw, body.get("items")).get("properties", {}) else None
    for name in ("data", "results"):
        array = _resolve(raw, body.get("properties", {}).get(name))
        if array.get("type") == "array" and "id" in _resolve(raw, array.get("items")).get(
            "properties", {}
        ):
            return f"/{name}/*"
    return None


def _answers_object_with_id(raw: dict[str, Any], operation: dict[str, Any]) -> bool:
    return "id" in _body_schema(raw, operation, "200").get("properties", {})


def status_class(status_code: int) -> str:
    return f"{status_code // 100}xx"


@dataclass
class Totals:
    """Requests the fuzzer sent, by phase and role, counted by status class; and the
    answers a check refused, by check (a failure Hypothesis replays counts again)."""

    requests: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    failures: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    operations: dict[tuple[str, str], Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    # Stateful: scenarios run by role, and runs Hypothesis cut short as flaky.
    scenarios: Counter[str] = field(default_factory=Counter)
    cut_short: Counter[str] = field(default_factory=Counter)

    def record(self, *, phase: str, role: str, label: str, status_code: int) -> None:
        self.requests[(phase, role)][status_class(status_code)] += 1
        self.operations[(phase, label)][str(status_code)] += 1

    def record_failure(self, *, phase: str, role: str, error: BaseException) -> None:
        names = [
            getattr(getattr(inner, "failure", inner), "title", type(inner).__name__)
            for inner in getattr(error, "exceptions", [error])
        ]
        for name in names:
            self.failures[(phase, role)][str(name)] += 1

    def as_dict(self) -> dict[str, Any]:
        phases: dict[str, dict[str, Any]] = {}
        for (phase, role), counts in sorted(self.requests.items()):
            phases.setdefault(phase, {})[role] = {
                "requests": sum(counts.values()),
                "by_status_class": dict(sorted(counts.items())),
                "check_failures": dict(self.failures.get((phase, role), {})),
            }
            if phase == "stateful":
                phases[phase][role]["scenarios"] = self.scenarios[role]
                phases[phase][role]["cut_short_as_flaky"] = self.cut_short[role]
        overall: Counter[str] = Counter()
        for counts in self.requests.values():
            overall.update(counts)
        return {
            "ci": CI,
            "requests": sum(overall.values()),
            "by_status_class": dict(sorted(overall.items())),
            "check_failures": sum(sum(c.values()) for c in self.failures.values()),
            "phases": phases,
            "webhooks": {
                "pinned_addresses": sorted(set(FENCE.pinned)),
                "deliveries_pinned": len(FENCE.pinned),
                "received_by_local_receiver": FENCE.delivered,
                "connections_beyond_loopback": FENCE.outside(),
            },
            "status_codes_by_operation": {
                f"{phase} {label}": dict(sorted(counts.items()))
                for (phase, label), counts in sorted(self.operations.items())
            },
        }

    def lines(self) -> list[str]:
        data = self.as_dict()
        classes = ", ".join(f"{k}: {v}" for k, v in data["by_status_class"].items())
        out = [
            f"{data['requests']} generated requests ({classes}); "
            f"server errors: {data['by_status_class'].get('5xx', 0)}; "
            f"answers refused by a check: {data['check_failures']}"
        ]
        for phase, roles in data["phases"].items():
            for role, figures in roles.items():
                classes = ", ".join(f"{k}: {v}" for k, v in figures["by_status_class"].items())
                failed = sum(figures["check_failures"].values())
                scenarios = figures.get("scenarios")
                out.append(
                    f"  {phase:<9} {role:<9} {figures['requests']:>6} ({classes})"
                    + (f" in {scenarios} scenarios" if scenarios is not None else "")
                    + (f"; {failed} refused by a check" if failed else "")
                )
        return out


TOTALS = Totals()


class TotalsReport:
    """A pytest plugin, registered by the fuzz module: at the end of the session, print
    the totals in the terminal summary and write them to var/fuzz-totals.json."""

    name = "fuzz-totals"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not TOTALS.requests:
            return
        terminalreporter.section("API fuzzer totals")
        for line in TOTALS.lines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(
            f"webhook deliveries: {len(FENCE.pinned)} pinned to a public address passed by "
            f"the policy, {FENCE.delivered} answered by the local receiver; connections "
            f"beyond loopback: {len(FENCE.outside())}"
        )
        TOTALS_FILE.parent.mkdir(exist_ok=True)
        TOTALS_FILE.write_text(json.dumps(TOTALS.as_dict(), indent=2) + "\n")
        terminalreporter.write_line(f"written to {TOTALS_FILE}")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0]).is_loopback
    except ValueError:
        return False


@dataclass
class FenceRecord:
    """Across the session: every host the fuzzed process connected to or tried to (from
    the suite's network guard), and every address the webhook transport pinned a
    delivery to after the address policy had passed it."""

    attempts: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)  # what the guard refused
    pinned: list[str] = field(default_factory=list)
    delivered: int = 0

    def outside(self) -> list[str]:
        return [host for host in self.attempts if not is_loopback(host)] + self.blocked


FENCE = FenceRecord()


def fake_resolver(monkeypatch) -> None:
    """Resolve every made-up host name to ``PUBLIC_STAND_IN``; addresses and localhost
    resolve as usual. No lookup leaves the machine."""
    resolve = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        if name is None or name == "localhost" or _is_address(name):
            return resolve(host, port, family, type, proto, flags)
        return resolve(PUBLIC_STAND_IN, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True


def deliveries_to(receiver, monkeypatch) -> None:
    """The last hop of every webhook delivery goes to ``receiver`` (plain HTTP on
    127.0.0.1) instead of the address the transport pinned. Everything before it is
    the real thing: the URL and address policy, the single resolution, the pinning;
    the pinned address is noted in ``FENCE.pinned``."""
    from payments.integrations.transport import PinnedAddressAdapter

    pool_key = PinnedAddressAdapter.build_connection_pool_key_attributes

    def to_receiver(self, request, verify, cert=None):
        host_params, pool_kwargs = pool_key(self, request, verify, cert)
        FENCE.pinned.append(str(host_params["host"]).strip("[]"))
        host_params.update(scheme="http", host="127.0.0.1", port=receiver.port)
        for tls_only in ("server_hostname", "assert_hostname"):
            pool_kwargs.pop(tls_only, None)
        return host_params, pool_kwargs

    monkeypatch.setattr(PinnedAddressAdapter, "build_connection_pool_key_attributes", to_receiver)
