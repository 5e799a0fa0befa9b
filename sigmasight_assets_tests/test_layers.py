"""The layer rules of DESIGN §2, checked on the source (AST, nothing imported):

* imports point downwards only: ``calc`` ← ``calendar``/``config`` ← ``warehouse``/``market_data`` ←
  ``ledger``/``scenarios`` ← ``pipelines`` ← ``defs`` ← ``definitions`` ← ``local_runs`` ← ``cli``
  (a module may import its own layer and the layers below);
* ``calc`` imports only numpy, pandas, scipy, the standard library and ``calc``; nothing below
  ``defs`` imports Dagster; no module imports ``dagster._core``;
* no module imports a ``_private`` name of another module of the package (nor reads one as an
  attribute of an imported module);
* no import cycle between the package's modules (function-level imports included);
* no process pool anywhere in the package (parallelism belongs to Dagster);
* one definition of the factor ETF tickers (``calc/factors.py``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sigmasight_assets"
ROOT = "sigmasight_assets"

# Layer of each top-level part of the package (a module may import its own rank and below).
RANKS = {
    "calc": 0,
    "calendar": 1, "config": 1,
    "warehouse": 2, "market_data": 2,
    "ledger": 3, "scenarios": 3,
    "pipelines": 4,
    "defs": 5,
    "definitions": 6,
    "local_runs": 7,
    "cli": 8,
}
DAGSTER_FROM = RANKS["defs"]
CALC_THIRD_PARTY = {"numpy", "pandas", "scipy"}
TICKERS = {"SPY", "TLT", "VTV", "VUG", "MTUM", "QUAL", "IWM", "USMV"}
# The synthetic market's model parameters are keyed by ticker (data of that provider, not a second
# definition of the factor list, which it imports from calc/factors.py).
TICKER_DATA = {f"{ROOT}.market_data.synthetic"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        out[module_name(path)] = (path, ast.parse(path.read_text(), str(path)))
    return out


def resolve(current: str, is_package: bool, level: int, target: str | None) -> str:
    """Absolute module name of a (possibly relative) import in module ``current``."""
    if level == 0:
        return target or ""
    base = current.split(".") if is_package else current.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join([*base, target] if target else base)


def imports(mods) -> list[tuple[str, str, list[str], int]]:
    """(importing module, imported module, names imported from it, line) for every import."""
    out = []
    for name, (path, tree) in mods.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out += [(name, alias.name, [], node.lineno) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = resolve(name, is_package, node.level, node.module)
                names = [a.name for a in node.names]
                out.append((name, target, names, node.lineno))
                # ``from . import x`` imports the submodule x
                for n in names:
                    if f"{target}.{n}" in mods:
                        out.append((name, f"{target}.{n}", [], node.lineno))
    return out


def part(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else ""


@pytest.fixture(scope="module")
def graph():
    mods = modules()
    return mods, imports(mods)


def test_every_part_of_the_package_has_a_layer(graph):
    mods, _ = graph
    parts = {part(m) for m in mods if m != ROOT}
    assert parts <= set(RANKS), parts - set(RANKS)


def test_imports_point_downwards(graph):
    mods, edges = graph
    wrong = []
    for src, dst, _names, line in edges:
        if not dst.startswith(ROOT + ".") or src == ROOT:
            continue
        if RANKS[part(dst)] > RANKS[part(src)]:
            wrong.append(f"{src}:{line} imports {dst}")
    assert not wrong, "\n".join(wrong)


def test_calc_is_pure_and_dagster_stays_in_the_dagster_layer(graph):
    mods, edges = graph
    std = set(sys.stdlib_module_names)
    wrong = []
    for src, dst, _names, line in edges:
        top = dst.split(".")[0]
        if part(src) == "calc" and not (dst.startswith(ROOT + ".calc") or top in CALC_THIRD_PARTY or top in std
                                       or top == "__future__"):
            wrong.append(f"{src}:{line} imports {dst}")
        if top == "dagster" and RANKS[part(src)] < DAGSTER_FROM:
            wrong.append(f"{src}:{line} imports {dst} below the Dagster layer")
        if dst.startswith("dagster._core") or (top == "dagster" and "_core" in _names):
            wrong.append(f"{src}:{line} imports Dagster's private {dst}")
    assert not wrong, "\n".join(wrong)


def test_no_private_name_crosses_a_module_boundary(graph):
    mods, edges = graph
    wrong = [f"{src}:{line} imports {n} from {dst}" for src, dst, names, line in edges
             if dst.startswith(ROOT) and dst != src for n in names if n.startswith("_") and n != "__version__"]
    # module._private attribute reads on an imported package module
    for name, (path, tree) in mods.items():
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = resolve(name, path.name == "__init__.py", node.level, node.module)
                for a in node.names:
                    if f"{target}.{a.name}" in mods:
                        aliases[a.asname or a.name] = f"{target}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith(ROOT):
                        aliases[a.asname or a.name] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and aliases[node.value.id] != name):
                wrong.append(f"{name}:{node.lineno} reads {aliases[node.value.id]}.{node.attr}")
    assert not wrong, "\n".join(wrong)


def test_no_import_cycle(graph):
    mods, edges = graph
    deps: dict[str, set[str]] = {m: set() for m in mods}
    for src, dst, _n, _l in edges:
        if dst in mods and dst != src and not src.startswith(dst + "."):  # a package's own __init__ is not a cycle
            deps[src].add(dst)
    # Tarjan's strongly connected components
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in deps[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for m in mods:
        if m not in index:
            visit(m)
    assert not cycles, cycles


def test_no_process_pool_in_the_package(graph):
    _mods, edges = graph
    wrong = [f"{src}:{line} imports {dst} {names}" for src, dst, names, line in edges
             if dst.split(".")[0] == "multiprocessing" or "ProcessPoolExecutor" in names]
    assert not wrong, "\n".join(wrong)


def test_the_factor_etf_tickers_are_defined_once(graph):
    mods, _ = graph
    wrong = []
    for name, (_path, tree) in mods.items():
        if name == f"{ROOT}.calc.factors" or name in TICKER_DATA:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in TICKERS:
                wrong.append(f"{name}:{node.lineno} {node.value!r}")
    assert not wrong, "\n".join(wrong)
