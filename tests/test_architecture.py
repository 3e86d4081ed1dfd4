"""The package's layering: no import cycles (function-local imports included, since they
only hide a cycle), attacks/ independent of the tool, and no module of audit_cli/ that
imports the command line."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("audit_cli", "attacks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str]) -> set[str]:
    """Project modules ``path`` imports at run time (anywhere but ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found - {module_name(path)}


def graph() -> dict[str, set[str]]:
    paths = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules) for p in paths}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycles():
    assert find_cycle(graph()) is None


def test_attacks_do_not_import_the_tool():
    edges = graph()
    assert not {m for a, deps in edges.items() if a.startswith("attacks") for m in deps if m.startswith("audit_cli")}


def test_only_the_command_line_imports_the_command_line():
    edges = graph()
    entry_points = ("audit_cli.app", "audit_cli.__main__")  # the console script and python -m audit_cli
    leaks = {a for a, deps in edges.items() if any(d.startswith("audit_cli.cli") or d == "audit_cli.app" for d in deps)
             and not (a.startswith("audit_cli.cli") or a in entry_points)}  # fmt: skip
    assert not leaks


def test_nothing_in_the_tool_imports_the_optional_flower_module():
    """flwr is an optional extra: the tool must import and run without it."""
    edges = graph()
    assert not {a for a, deps in edges.items() if "audit_cli.federated.flower" in deps}
