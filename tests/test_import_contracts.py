"""The import contracts of docs/architecture.md: the project keeps them (the same check
as ``make lint``), and the contract "no import circle" finds a circle when there is
one, through imports inside functions too."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp

from tests.import_contracts import AcyclicModulesContract

ROOT = Path(__file__).resolve().parent.parent


def _graph(*imports: tuple[str, str, int]) -> grimp.ImportGraph:
    graph = grimp.ImportGraph()
    for importer, imported, line in imports:
        graph.add_import(
            importer=importer, imported=imported, line_number=line, line_contents="import"
        )
    return graph


def _check(graph: grimp.ImportGraph):
    contract = AcyclicModulesContract(
        name="no circle", session_options={}, contract_options={"ignore_modules": ["migrations"]}
    )
    return contract.check(graph, verbose=False)


def test_a_circle_across_two_apps_is_found_with_the_imports_that_make_it():
    # payments.expiry -> marketplace.services.orders -> payments.refunds -> payments.expiry,
    # the last import inside a function (grimp reads it like any other).
    check = _check(
        _graph(
            ("payments.expiry", "marketplace.services.orders", 13),
            ("marketplace.services.orders", "payments.refunds", 36),
            ("payments.refunds", "payments.expiry", 663),
            ("payments.refunds", "payments.models", 20),
        )
    )

    assert not check.kept
    [circle] = check.metadata["circles"]
    assert circle == [
        "marketplace.services.orders -> payments.refunds (line 36)",
        "payments.expiry -> marketplace.services.orders (line 13)",
        "payments.refunds -> payments.expiry (line 663)",
    ]


def test_one_way_imports_and_migrations_keep_the_contract():
    check = _check(
        _graph(
            ("payments.tasks", "payments.collection.refunds", 5),
            ("payments.collection.refunds", "payments.ledger.posting", 9),
            ("payments.ledger.posting", "payments.models", 3),
            # A migration importing a model module that names it back is not a circle
            # anyone runs: migrations are left out.
            ("payments.migrations.m0031", "payments.webhook_secrets", 12),
            ("payments.webhook_secrets", "payments.migrations.m0031", 1),
        )
    )

    assert check.kept
    assert check.metadata["circles"] == []


def test_the_project_keeps_every_import_contract():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run(
        [str(lint_imports), "--no-logo", "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout
