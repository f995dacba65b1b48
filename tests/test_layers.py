"""Imports go one way (text -> model -> graph -> catalog -> plan -> execute -> record):
the lower layers load none of the tools of the layers above them."""
from __future__ import annotations

import subprocess
import sys

import pytest

CHECKS = {
    "datamake.planner": ("click", "watchdog", "lark", "rich", "fsspec", "pandas"),
    "datamake.executor": ("click", "watchdog", "lark", "rich", "fsspec", "pandas"),
    "datamake.catalog": ("click", "lark", "rich", "sqlite3", "fsspec", "pandas"),
    "datamake.graph": ("click", "lark", "sqlite3", "fsspec"),
    "datamake.parser": ("click", "sqlite3", "fsspec", "rich"),
    "datamake.cli": ("lark", "pandas", "fsspec", "rich", "matplotlib"),
}


@pytest.mark.parametrize("module", list(CHECKS))
def test_module_does_not_load_higher_layers(module):
    forbidden = CHECKS[module]
    code = (f"import sys, {module}; "
            f"print([m for m in {forbidden!r} if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_noop_build_does_not_parse_or_load_heavy_libraries(proj):
    proj.write("Datafile", """
        dataset src = "src.txt"
        out: src
            src.upper()
    """)
    proj.write("src.txt", "x")
    assert proj.built() == ["out"]
    proj.built()  # hashes the output if it was too young to trust its stamp
    code = ("import sys; sys.argv = ['datamake', '--json']\n"
            "from datamake.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('lark', 'pandas', 'fsspec', 'rich', 'datamake.model',"
            " 'datamake.parser', 'datamake.fingerprint', 'datamake.ui', 'blake3', 'hashlib')"
            " if m in sys.modules],"
            " file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code], cwd=proj.root, capture_output=True, text=True)
    assert r.stderr.strip().splitlines()[-1] == "[]"


# The layers, lowest first. A module imports only from its own layer or those below it,
# counting imports inside functions (a lazy import is still a dependency) but not those
# under `if TYPE_CHECKING:` (annotations only). docs/architecture.md draws this.
LAYERS = {
    "base": ["errors", "messages", "extras", "completion", "envs", "hashing", "steps", "locations", "limits", "processes", "versions",
             "outcomes", "scheduler", "ui.events", "ui.api", "ui.page", "ui.live",
             "ui.preview", "ui"],
    "language": ["model", "diagnostics", "pysource", "notebook_cells", "syntax_errors",
                 "params_files", "halves", "parser", "loader"],
    "formats": ["report", "formats"],
    "graph": ["graph", "fingerprint", "recipe"],
    "data": ["catalog", "cache", "state", "report_index", "notebook", "notebook_rule",
             "report_versions"],
    "project": ["overrides", "parsecache", "project"],
    "plan": ["planner"],
    "run": ["worker", "runners", "recorder", "builder", "executor"],
    "api": ["api", "status", "housekeeping", "console", "explain", "ui.code", "ui.source", "ui.export", "ui.server",
            "dag", "watch"],
    "cli": ["cli", "__main__", ""],
}


def _imports(root):
    """module -> the datamake modules it imports, read from the source."""
    import ast

    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).with_suffix("")
        parts = list(rel.parts)
        package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        name = ".".join(parts)
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for node in ast.walk(tree)
                       if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test)
                       for stmt in node.body for n in ast.walk(stmt)}
        deps = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - node.level + 1]
                mod = base + (node.module.split(".") if node.module else [])
                if node.module:  # `from . import x` imports x (or a name of the package)
                    deps.add(".".join(mod))
                deps.update(".".join(mod + [a.name]) for a in node.names)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                    else [node.module or ""]
                for n in names:
                    if n == "datamake" or n.startswith("datamake."):
                        deps.add(n.split(".", 1)[1] if "." in n else "")
        found[name] = deps
    return {m: {d for d in deps if d in found and d != m} for m, deps in found.items()}


def test_imports_follow_the_layers():
    from pathlib import Path

    import datamake

    graph = _imports(Path(datamake.__file__).parent)
    layer_of = {m: i for i, (_, mods) in enumerate(LAYERS.items()) for m in mods}
    names = list(LAYERS)
    unplaced = sorted(set(graph) - set(layer_of))
    assert not unplaced, f"modules in no layer (place them in LAYERS): {unplaced}"
    upward = sorted(f"{m} ({names[layer_of[m]]}) imports {d} ({names[layer_of[d]]})"
                    for m, deps in graph.items() for d in deps
                    if layer_of[d] > layer_of[m] and m != "")
    assert not upward, "imports against the layers:\n" + "\n".join(upward)


def test_no_import_cycles():
    from pathlib import Path

    import datamake

    graph = _imports(Path(datamake.__file__).parent)
    graph[""] = set()  # the package's lazy facade imports api and report on first use
    # Depth-first search with colours: a grey module met again closes a cycle.
    colour: dict[str, int] = {}
    cycles = []

    def visit(m, path):
        colour[m] = 1
        for d in sorted(graph[m]):
            if colour.get(d) == 1:
                cycles.append(path[path.index(d):] + [d])
            elif d not in colour:
                visit(d, path + [d])
        colour[m] = 2

    for m in sorted(graph):
        if m not in colour:
            visit(m, [m])
    assert not cycles, cycles
