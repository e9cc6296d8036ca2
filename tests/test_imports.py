"""The package's modules import each other without a cycle, lazy (in-function) imports included.

Edges are read from the source with `ast`: `from a.b import c` is an edge to the module `a.b.c`
when that is a module, else to `a.b`. The compiled core (`_kernels`) has no edges of its own.
"""
import ast
from pathlib import Path

import yolo9000

PACKAGE_DIR = Path(yolo9000.__file__).resolve().parent


def package_modules():
    modules = {}
    for path in PACKAGE_DIR.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def import_edges(modules):
    edges = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    targets.add(sub if sub in modules else source)
        edges[name] = {t for t in targets if t in modules and t != name}
    return edges


def find_cycle(edges):
    """One cycle as a list of modules, or None (depth-first search with three colours)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_import_cycle():
    edges = import_edges(package_modules())
    assert len(edges) > 30          # the walk really saw the package
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_only_the_entry_points_import_the_package_root():
    # The root's lazy names (Network, Detector) point back into the package: importing them from
    # inside it would close a circle through yolo9000/__init__.py.
    edges = import_edges(package_modules())
    users = sorted(m for m, targets in edges.items() if "yolo9000" in targets)
    assert users == ["yolo9000.__main__"] or users == [], users


def test_the_cycle_finder_finds_a_planted_cycle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(edges) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
