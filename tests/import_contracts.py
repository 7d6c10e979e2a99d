"""import-linter's contract "no import circle": between any modules of the root
packages, imports inside functions counted (grimp reads every import statement).

import-linter's own ``acyclic_siblings`` finds circles between the packages of one
package; this one also finds a circle that runs through two apps (``payments`` and
``marketplace``). Used by ``make lint`` through ``[tool.importlinter]`` in
pyproject.toml.
"""

from __future__ import annotations

from collections.abc import Iterator

import grimp
from importlinter import Contract, ContractCheck, fields, output


class AcyclicModulesContract(Contract):
    """No module reaches itself through imports. ``ignore_modules`` names modules left
    out (migrations: Django runs them, nothing imports them)."""

    type_name = "acyclic_modules"

    ignore_modules = fields.ListField(subfield=fields.StringField(), required=False)

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        ignored = tuple(self.ignore_modules or ())  # type: ignore[arg-type]

        def kept(module: str) -> bool:
            return not any(part in module.split(".") for part in ignored)

        modules = sorted(m for m in graph.modules if kept(m))
        circles = [sorted(c) for c in _strongly_connected(graph, modules, kept) if len(c) > 1]
        details = []
        for circle in circles:
            members = set(circle)
            edges = []
            for importer in circle:
                for imported in sorted(graph.find_modules_directly_imported_by(importer)):
                    if imported in members:
                        lines = graph.get_import_details(importer=importer, imported=imported)
                        where = ", ".join(str(d["line_number"]) for d in lines)
                        edges.append(f"{importer} -> {imported} (line {where})")
            details.append(edges)
        return ContractCheck(kept=not circles, warnings=None, metadata={"circles": details})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for number, edges in enumerate(check.metadata["circles"], 1):
            output.print_error(f"Import circle {number}, through these imports:")
            for edge in edges:
                output.print_error(f"- {edge}", bold=False)
            output.new_line()


def _strongly_connected(
    graph: grimp.ImportGraph, modules: list[str], kept: object
) -> Iterator[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    counter = 0
    for root in modules:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if not kept(child):  # type: ignore[operator]
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    grandchildren = sorted(graph.find_modules_directly_imported_by(child))
                    work.append((child, iter(grandchildren)))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                yield component
