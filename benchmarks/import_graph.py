"""The project's import graph, measured: circles between modules and between packages, and the biggest modules.

    python -m benchmarks.import_graph            # a table; --json for the raw figures

Why a measurement and not a picture: the architecture issue (#16) asks that no import point up and that there be no
circles, and that the figures before and after a restructuring be recorded (docs/design.md). Imports inside a
function are counted apart (``lazy``): they are how a module defers a heavy dependency (torch, lerobot) or breaks a
circle on purpose, so they are listed but do not make a module-level circle.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "so101_dataengine"
LAYERS = (
    ("base",), ("lerobot_compat", "scenes"), ("formats",), ("classifier",), ("rollouts", "curation", "demos"),
    ("training", "evaluation", "publish", "hooks", "review", "lerobot_env"), ("cycle", "cli"),
)
"""Bottom to top (docs/design.md): a module may import its own layer's and lower layers' modules, never a higher's."""


@dataclass
class Module:
    name: str
    lines: int
    eager: set[str] = field(default_factory=set)
    """Project modules imported at module level (run when this module is imported)."""
    lazy: set[str] = field(default_factory=set)
    """Project modules imported inside a function."""


def package_dirs() -> dict[str, Path]:
    """Import package -> folder, from pyproject.toml's ``[tool.setuptools.package-dir]`` (the folders keep their
    names in the repository and install under one namespace)."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    return {package: ROOT / folder for package, folder in table.items()}


def module_files() -> dict[str, Path]:
    """Every project module's import name and file. A folder mapped to its own package (``scenes/``) is that
    package's, not its parent's."""
    dirs = package_dirs()
    found = {}
    for package, folder in sorted(dirs.items(), key=lambda item: len(item[0])):
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join([package, *parts])] = path
    return found


def is_command(module: str) -> bool:
    """A package's ``cli`` module: its subcommands, part of the command layer whichever folder holds it."""
    return module.endswith(".cli")


def layer_of(module: str) -> int:
    """The module's layer (index into LAYERS); the namespace's ``__init__`` is the bottom, every ``cli`` the top."""
    parts = module.split(".")
    if len(parts) == 1:
        return 0
    if is_command(module):
        return len(LAYERS) - 1
    return next(rank for rank, names in enumerate(LAYERS) if parts[1] in names)


def _targets(node: ast.AST, here: str, is_package: bool, known: set[str]) -> list[str]:
    """The project modules an import statement names (``from pkg import mod`` names ``pkg.mod`` if it exists)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            anchor = here.split(".") if is_package else here.split(".")[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, base] if base else anchor)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    else:
        return []
    found = []
    for name in names:
        while name and name not in known:  # ``import a.b.c`` imports a.b.c; keep the longest known prefix
            name = name.rpartition(".")[0]
        if name:
            found.append(name)
    return found


def read_graph() -> dict[str, Module]:
    files = module_files()
    known = set(files)
    graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        module = Module(name, len(path.read_text().splitlines()))
        is_package = path.name == "__init__.py"
        lazy_nodes = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      for n in ast.walk(f)}
        for node in ast.walk(tree):
            for target in _targets(node, name, is_package, known):
                if target != name:
                    (module.lazy if id(node) in lazy_nodes else module.eager).add(target)
        graph[name] = module
    return graph


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan), each sorted, biggest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(found, key=len, reverse=True)


def package_of(module: str) -> str:
    """The package under the namespace (``so101_dataengine.publish``), or the module itself for the namespace's
    direct modules (``so101_dataengine.cycle``) and for the command modules (``so101_dataengine.publish.cli``)."""
    return module if is_command(module) else ".".join(module.split(".")[:2])


def measure() -> dict:
    graph = read_graph()
    eager = {name: m.eager for name, m in graph.items()}
    every = {name: m.eager | m.lazy for name, m in graph.items()}
    packages = {}
    for name, m in graph.items():
        packages.setdefault(package_of(name), set()).update(package_of(t) for t in m.eager | m.lazy)
    packages = {k: sorted(v - {k}) for k, v in packages.items()}
    upward = sorted(f"{m.name} -> {t}" for m in graph.values() for t in m.eager | m.lazy
                    if layer_of(t) > layer_of(m.name))
    return {
        "modules": len(graph),
        "lines": sum(m.lines for m in graph.values()),
        "imports_pointing_up": upward,
        "module_circles_eager": circles(eager),
        "module_circles_with_lazy": circles(every),
        "package_circles": circles({k: set(v) for k, v in packages.items()}),
        "package_imports": dict(sorted(packages.items(), key=lambda item: (layer_of(item[0]), item[0]))),
        "biggest_modules": sorted(((m.lines, m.name) for m in graph.values()), reverse=True)[:10],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON")
    args = parser.parse_args(argv)
    figures = measure()
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{figures['modules']} modules, {figures['lines']} lines")
    print(f"imports_pointing_up: {len(figures['imports_pointing_up'])}")
    for line in figures["imports_pointing_up"]:
        print("   ", line)
    for key in ("module_circles_eager", "module_circles_with_lazy", "package_circles"):
        print(f"{key}: {len(figures[key])}")
        for circle in figures[key]:
            print("   ", " <-> ".join(circle))
    print("packages (bottom to top) import:")
    for package, targets in figures["package_imports"].items():
        print(f"    [{layer_of(package)}] {package} -> {', '.join(t.removeprefix(NAMESPACE + '.') for t in targets) or '-'}")
    print("biggest modules:", ", ".join(f"{name} ({lines})" for lines, name in figures["biggest_modules"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
