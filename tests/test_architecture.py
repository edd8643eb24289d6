"""The layering the README's Architecture section promises, read from the imports of every module.

interfaces -> core -> one upstream seam -> MyCareNet client or simulator; the simulator at the
edge; only the seam builds upstream clients; no import cycle between the top-level parts.
"""
from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "unified_messaging"
BASE_MODULES = {"domain", "identifiers", "texts", "xmlsafe"}
COMPOSITION = {"gateway", "cli", "upstream", "supervisor"}  # the composition root (and its process tree)
CLIENT_CLASSES = {"StsClient", "GenericInsurabilityClient", "GenAsyncClient", "WsseSigningPlugin"}


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return found


MODULES = modules()


def part(module: str) -> str:
    """The top-level part a module belongs to: ``unified_messaging.mycarenet.wsse.dsig`` -> ``mycarenet``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name.startswith("unified_messaging.")}


def parts_imported(module: str) -> set[str]:
    return {part(name) for name in imports_of(MODULES[module])} - {part(module), ""}


def test_the_interfaces_never_import_the_upstream_client():
    offenders = {m: sorted(parts_imported(m) & {"mycarenet"}) for m in MODULES
                 if part(m) in ("soap", "insurability", "web")}
    assert {m: p for m, p in offenders.items() if p} == {}


def test_the_upstream_client_imports_only_the_shared_base_modules():
    offenders = {m: sorted(parts_imported(m) - BASE_MODULES) for m in MODULES if part(m) == "mycarenet"}
    assert {m: p for m, p in offenders.items() if p} == {}


def test_efact_is_a_format_package_that_imports_only_base_modules():
    offenders = {m: sorted(parts_imported(m) - BASE_MODULES) for m in MODULES if part(m) == "efact"}
    assert {m: p for m, p in offenders.items() if p} == {}


def test_the_simulator_sits_at_the_edge():
    from_invoicing = {m for m in MODULES if part(m) == "simulator" and "invoicing" in parts_imported(m)}
    assert from_invoicing == set()
    users = {m for m in MODULES if part(m) not in {"simulator"} | COMPOSITION and "simulator" in parts_imported(m)}
    assert users == set(), "only the composition root, the upstream seam and tests may use the simulator"


def test_only_the_upstream_seam_constructs_upstream_clients():
    builders = defaultdict(set)
    for module, tree in MODULES.items():
        if part(module) in ("simulator", "mycarenet"):
            continue  # the client package defines them; the simulator signs its own answers
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in CLIENT_CLASSES:
                builders[node.func.id].add(module)
    assert {name: sorted(where) for name, where in builders.items()} == {
        name: ["unified_messaging.upstream"] for name in builders}


def test_no_import_cycle_between_the_top_level_parts():
    graph = defaultdict(set)
    for module in MODULES:
        if part(module) in COMPOSITION:
            continue  # the composition root imports everything; nothing imports it back (checked below)
        graph[part(module)] |= parts_imported(module) - COMPOSITION
    back = {m for m in MODULES if part(m) not in COMPOSITION and parts_imported(m) & {"gateway", "cli"}}
    assert back == set()

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return path + [start]
                if nxt not in path:
                    stack.append((nxt, path + [nxt]))
        return None

    cycles = {tuple(c) for p in list(graph) if (c := cycle_from(p))}
    assert cycles == set()


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_long_module_says_why_it_is_one_piece(module):
    path = PACKAGE.parent / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
    lines = path.read_text(encoding="utf-8").count("\n")
    if lines <= 500:
        return
    docstring = ast.get_docstring(MODULES[module]) or ""
    assert "one piece" in docstring.lower(), f"{module} has {lines} lines and does not say why it is one piece"
