"""The import rules of the code base, checked on its source (no imports are executed).

    api -> deeployd.*.service -> deeployd.*.store / deeployd.*.contract
    workflows -> activities -> deeployd (never a service)

- `deeployd` never imports `workflows/` or `activities/` (services drive Temporal by the names in
  the family's contract module);
- `workflows/` and `activities/` never import a domain service;
- HTTP (fastapi, starlette, sse-starlette) is known only to `api/`;
- routes hold no SQL (no sqlalchemy, sqlmodel or psycopg import in `api/routes/`);
- a contract module imports only the standard library, pydantic and other contract modules;
- no module reaches into another's private names (`from x import _name`);
- an import inside a function may defer an optional or heavy dependency, never hide a cycle.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("deeployd", "api", "workflows", "activities")
FIRST_PARTY = (*PACKAGES, "worker")
HTTP = ("fastapi", "starlette", "sse_starlette")
SQL = ("sqlalchemy", "sqlmodel", "psycopg", "psycopg_pool")
SERVICE_SUFFIXES = (".service",)


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    path: str  # file, relative to the repository
    line: int
    target: str  # dotted module name (for `from a import b`, "a.b" if a.b is a module, else "a")
    names: tuple[str, ...]
    in_function: bool
    type_only: bool


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source_files() -> list[Path]:
    files = [ROOT / "worker.py"]
    for package in PACKAGES:
        files += sorted((ROOT / package).rglob("*.py"))
    return [f for f in files if "migrations" not in f.parts]


MODULES = {_module_name(f): f for f in _source_files()}


def _resolve(importer: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _visit(
    found: list[Import], module: str, path: Path, node: ast.AST, in_function: bool, type_only: bool
) -> None:
    rel = str(path.relative_to(ROOT))
    for child in ast.iter_child_nodes(node):
        func = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        guarded = type_only or (
            isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
        )
        if isinstance(child, ast.Import):
            for alias in child.names:
                found.append(Import(module, rel, child.lineno, alias.name, (), func, type_only))
        elif isinstance(child, ast.ImportFrom):
            base = _resolve(module, path, child)
            names = tuple(a.name for a in child.names)
            targets = [f"{base}.{n}" for n in names if f"{base}.{n}" in MODULES]
            for target in targets or [base]:
                found.append(Import(module, rel, child.lineno, target, names, func, type_only))
        _visit(found, module, path, child, func, guarded)


def _imports() -> list[Import]:
    found: list[Import] = []
    for module, path in MODULES.items():
        _visit(found, module, path, ast.parse(path.read_text(), filename=str(path)), False, False)
    return found


IMPORTS = _imports()


def _top(name: str) -> str:
    return name.split(".")[0]


def _where(imp: Import) -> str:
    return f"{imp.path}:{imp.line} imports {imp.target}"


def test_deeployd_never_imports_workflows_or_activities() -> None:
    bad = [
        _where(i)
        for i in IMPORTS
        if _top(i.importer) == "deeployd" and _top(i.target) in ("workflows", "activities")
    ]
    assert bad == [], "drive Temporal by the contract's names instead:\n" + "\n".join(bad)


def test_workflows_and_activities_never_import_a_service() -> None:
    bad = [
        _where(i)
        for i in IMPORTS
        if _top(i.importer) in ("workflows", "activities", "worker")
        and _top(i.target) == "deeployd"
        and i.target.endswith(SERVICE_SUFFIXES)
    ]
    assert bad == [], "\n".join(bad)


def test_http_is_known_only_to_the_api() -> None:
    bad = [
        _where(i)
        for i in IMPORTS
        if _top(i.importer) != "api" and _top(i.target) in HTTP and not i.type_only
    ]
    assert bad == [], "raise a deeployd.errors error instead:\n" + "\n".join(bad)


def test_routes_hold_no_sql() -> None:
    bad = [
        _where(i)
        for i in IMPORTS
        if i.importer.startswith("api.routes") and _top(i.target) in SQL and not i.type_only
    ]
    assert bad == [], "put the query in the family's store:\n" + "\n".join(bad)


def test_contracts_import_only_the_standard_library_pydantic_and_contracts() -> None:
    allowed = {"pydantic", "typing_extensions", "__future__"}
    bad = []
    for i in IMPORTS:
        if not i.importer.endswith(".contract") or i.type_only:
            continue
        top = _top(i.target)
        if top in allowed or top in sys.stdlib_module_names:
            continue
        if top == "deeployd" and (i.target.endswith(".contract") or i.target == "deeployd"):
            continue
        bad.append(_where(i))
    assert bad == [], "\n".join(bad)


def test_contract_modules_exist_for_every_workflow_family() -> None:
    for family in ("agents", "a2a", "pipelines"):
        assert f"deeployd.{family}.contract" in MODULES, f"deeployd/{family}/contract.py is missing"


def test_no_module_imports_another_modules_private_names() -> None:
    bad = [
        f"{_where(i)} ({', '.join(n for n in i.names if n.startswith('_'))})"
        for i in IMPORTS
        if _top(i.target) in FIRST_PARTY
        and any(n.startswith("_") and not n.startswith("__") for n in i.names)
    ]
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = set()  # local names bound to a first-party module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(module, path, node)
                aliases |= {a.asname or a.name for a in node.names if f"{base}.{a.name}" in MODULES}
            elif isinstance(node, ast.Import):
                aliases |= {a.asname for a in node.names if a.asname and a.name in MODULES}
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(
                    f"{path.relative_to(ROOT)}:{node.lineno} reads {node.value.id}.{node.attr}"
                )
    assert bad == [], "\n".join(bad)


def _module_of(target: str) -> str:
    """The first-party module an import runs: `deeployd.x.name` -> `deeployd.x` ("" if none)."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for i in IMPORTS:
        if i.type_only or _top(i.target) not in FIRST_PARTY:
            continue
        target = _module_of(i.target)
        if target and target != i.importer:
            graph[i.importer].add(target)
    return graph


def _reaches(graph: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        if node in seen:
            continue
        seen.add(node)
        todo.extend(graph.get(node, ()))
        # importing a.b.c runs a and a.b first
        parts = node.split(".")
        todo.extend(
            ".".join(parts[:n]) for n in range(1, len(parts)) if ".".join(parts[:n]) in MODULES
        )
    return False


def test_no_function_level_import_hides_a_cycle() -> None:
    graph = _graph()
    bad = []
    for i in IMPORTS:
        if not i.in_function or i.type_only or _top(i.target) not in FIRST_PARTY:
            continue
        target = _module_of(i.target)
        if target and _reaches(graph, target, i.importer):
            bad.append(_where(i))
    assert bad == [], "these imports would be a cycle at module level:\n" + "\n".join(bad)


def test_the_checks_see_the_code_base() -> None:
    # Guards the checks above against silently reading nothing.
    assert {"deeployd.errors", "api.main", "worker"} <= set(MODULES)
    assert any(i.importer == "worker" for i in IMPORTS)
