"""The package's modules import each other without a cycle and only downwards through its
levels, lazy (in-function) imports included.

Edges are read from the source with `ast`: `from a.b import c` is an edge to the module `a.b.c`
when that is a module, else to `a.b`. The compiled core (`_kernels`) has no edges of its own.
"""
import ast
from pathlib import Path

import yolo9000

PACKAGE_DIR = Path(yolo9000.__file__).resolve().parent
# modules without Python source: imported, never importing
COMPILED_MODULES = {"yolo9000._kernels"}

# The levels of the package, top first: a module imports its own level or the ones below it,
# never one above. Each level names its packages and modules under yolo9000 (the package root
# itself is "yolo9000").
LEVELS = [
    ("yolo9000", "__main__", "cli", "commands"),
    ("demos",),
    ("training",),
    ("inference",),
    ("model",),
    ("data", "metrics"),
    ("layers",),
    ("kernels", "_kernels"),
    ("boxes", "parallel", "errors", "fileio", "progress", "runs", "_version",
     "names", "truths", "label_scores", "memory"),
]
# on one level, and neither imports the other
SEPARATE_PEERS = {"data", "metrics"}
# Upward imports tolerated for now, each with its reason; every other upward import fails the
# test (and a pair listed here that no longer exists fails too). Empty: keep it so.
KNOWN_UPWARD = set()


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
    known = set(modules) | COMPILED_MODULES
    edges = {name: set() for name in COMPILED_MODULES}
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
                    targets.add(sub if sub in known else source)
        edges[name] = {t for t in targets if t in known and t != name}
    return edges


def level_of(module):
    """(level number from the top, the package or module under yolo9000 that places it)."""
    parts = module.split(".")
    part = parts[1] if len(parts) > 1 else parts[0]
    for number, members in enumerate(LEVELS):
        if part in members:
            return number, part
    raise AssertionError(f"{module} is on no level: add {part!r} to LEVELS in {__file__}")


def direction_problems(edges, known_upward=()):
    """One message per import that goes up a level, or between separate peers."""
    problems = []
    for importer in sorted(edges):
        for imported in sorted(edges[importer]):
            (low, low_part), (high, high_part) = level_of(importer), level_of(imported)
            if (importer, imported) in known_upward:
                continue
            if high < low:
                problems.append(f"{importer} (level {low}: {low_part}) imports {imported} "
                                f"(level {high}: {high_part}), a level above it")
            elif low_part != high_part and {low_part, high_part} <= SEPARATE_PEERS:
                problems.append(f"{importer} (level {low}: {low_part}) imports {imported} "
                                f"(level {high}: {high_part}): {low_part} and {high_part} are "
                                "peers that do not import each other")
    return problems


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


def test_imports_only_go_down_the_levels():
    edges = import_edges(package_modules())
    problems = direction_problems(edges, KNOWN_UPWARD)
    assert not problems, "imports against the levels (top first: " + " > ".join(
        "/".join(level) for level in LEVELS) + "):\n" + "\n".join(problems)


def test_every_known_upward_import_still_exists():
    # a pair that went away leaves the exemption for a new upward import of the same pair
    edges = import_edges(package_modules())
    assert {pair for pair in KNOWN_UPWARD if pair[1] not in edges.get(pair[0], ())} == set()


def test_the_level_check_names_both_modules_and_levels():
    edges = {"yolo9000.inference.detector": {"yolo9000.training.trainer", "yolo9000.boxes"},
             "yolo9000.data.joint": {"yolo9000.metrics.detection", "yolo9000.layers.region"},
             "yolo9000.training.trainer": set(), "yolo9000.boxes": set(),
             "yolo9000.metrics.detection": set(), "yolo9000.layers.region": set()}
    assert direction_problems(edges) == [
        "yolo9000.data.joint (level 5: data) imports yolo9000.metrics.detection (level 5: "
        "metrics): data and metrics are peers that do not import each other",
        "yolo9000.inference.detector (level 3: inference) imports yolo9000.training.trainer "
        "(level 2: training), a level above it"]
    assert direction_problems(edges, {("yolo9000.inference.detector",
                                       "yolo9000.training.trainer"),
                                      ("yolo9000.data.joint", "yolo9000.metrics.detection")}) == []


def test_no_command_imports_another_command():
    # what two commands share lives below them (or in the shared options)
    edges = import_edges(package_modules())
    shared = {"yolo9000.commands", "yolo9000.commands.options"}
    crossing = {(m, t) for m, targets in edges.items() if m.startswith("yolo9000.commands.")
                for t in targets if t.startswith("yolo9000.commands") and t not in shared}
    assert len([m for m in edges if m.startswith("yolo9000.commands.")]) > 5
    assert crossing == set(), crossing


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
