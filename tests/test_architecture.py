"""The package's layering (docs/architecture.md): every import runs down the layer order
(function-local imports included, since they only hide an arrow), no import cycles, only
the entry points and the shared leaves at the root of audit_cli/, and no module of
audit_cli/ that imports the command line."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("audit_cli", "attacks")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, modules: set[str], annotations: bool = False) -> set[str]:
    """Project modules ``path`` imports at run time (anywhere but ``if TYPE_CHECKING:``), and
    with ``annotations`` those it imports for type annotations too."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)} if not annotations else set()  # fmt: skip
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


def graph(annotations: bool = False) -> dict[str, set[str]]:
    paths = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports(p, modules, annotations) for p in paths}


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
    assert not {a for a, deps in edges.items() if "audit_cli.repair.flower" in deps}


# docs/architecture.md's layers, bottom up: a module may import its own layer and those
# below it, for type annotations too (an annotation names what the module depends on). A
# module's layer is its package under audit_cli/ (or, at the root, its own name; attacks/
# is one package), except the audit request, which sits low: the checks read the
# configuration it defines.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    ("statistics", frozenset({"attacks"})),
    ("foundations", frozenset({"errors", "options", "files", "atomic", "version", "config"})),
    ("data", frozenset({"data"})),
    ("request", frozenset({"auditing.request"})),
    ("models", frozenset({"models"})),
    ("training", frozenset({"training"})),
    ("federated", frozenset({"federated"})),
    ("unlearn", frozenset({"unlearn"})),
    ("families", frozenset({"families"})),
    ("repair", frozenset({"repair"})),
    ("shadows", frozenset({"shadows"})),
    ("report", frozenset({"report"})),
    ("checks", frozenset({"checks"})),
    ("audit", frozenset({"auditing"})),
    ("command line", frozenset({"cli"})),
    ("entry points", frozenset({"audit_cli", "api", "app", "__main__"})),
)
ROOT_MODULES = frozenset({"__init__", "__main__", "api", "app"}) | LAYERS[1][1]


def home(module: str) -> str:
    """Where a module belongs: audit_cli.auditing.inputs -> auditing, audit_cli.errors ->
    errors, attacks.lira -> attacks; a module a layer names itself (auditing.request) is its own."""
    parts = module.split(".")
    if ".".join(parts[1:]) in {h for _, homes in LAYERS for h in homes}:
        return ".".join(parts[1:])
    return parts[0] if parts[0] == "attacks" or len(parts) == 1 else parts[1]


def layer_of(module: str) -> int:
    (index,) = [i for i, (_, homes) in enumerate(LAYERS) if home(module) in homes]
    return index


def upward_arrows(edges: dict[str, set[str]]) -> list[str]:
    return sorted(f"{a} -> {b} ({LAYERS[layer_of(a)][0]} imports {LAYERS[layer_of(b)][0]})"
                  for a, deps in edges.items() for b in deps if layer_of(b) > layer_of(a))  # fmt: skip


def test_upward_arrows_are_found():
    assert upward_arrows({"audit_cli.models.recipe": {"audit_cli.training.loop"}}) == [
        "audit_cli.models.recipe -> audit_cli.training.loop (models imports training)"
    ]
    assert upward_arrows({"audit_cli.training.loop": {"audit_cli.models.recipe", "audit_cli.errors"}}) == []
    # The request sits below the checks that read it; the rest of its package above them.
    assert upward_arrows({"audit_cli.checks.context": {"audit_cli.auditing.request"}}) == []
    assert upward_arrows({"audit_cli.checks.context": {"audit_cli.auditing.inputs"}}) == [
        "audit_cli.checks.context -> audit_cli.auditing.inputs (checks imports audit)"
    ]


def test_every_import_runs_down_the_layers():
    edges = graph(annotations=True)
    assert all(layer_of(m) >= 0 for m in edges)  # every module has exactly one layer
    assert upward_arrows(edges) == []


def test_only_entry_points_and_shared_leaves_sit_at_the_root():
    root = {p.stem for p in (ROOT / "audit_cli").glob("*.py")}
    assert root <= ROOT_MODULES, root - ROOT_MODULES
    assert len(ROOT_MODULES) <= 10


def test_docs_architecture_lists_the_layers_in_order():
    doc = (ROOT / "docs" / "architecture.md").read_text()
    table = re.search(r"\| layer \| homes \|.*?\n\n", doc, flags=re.S).group(0)
    lines = [line for line in table.splitlines()[2:] if line]
    assert [line.split("|")[1].strip() for line in lines] == [name for name, _ in LAYERS]
    for row, (_, homes) in zip(lines, LAYERS, strict=True):
        named = {n.replace("/", ".") for n in re.findall(r"`([\w/]+?)(?:/|\.py)?`", row.split("|")[2])}
        assert named == {h if h != "audit_cli" else "__init__" for h in homes}, (row, homes)


def test_no_module_shadows_a_name_of_the_python_api():
    # A subpackage audit_cli/audit/ would replace the lazy audit() function as soon as
    # anything imported it: `from audit_cli import audit` would then return a module.
    import audit_cli
    import audit_cli.auditing.pipeline  # noqa: F401  (what the command line imports first)

    assert not {p.stem for p in (ROOT / "audit_cli").iterdir()} & set(audit_cli.__all__)
    from audit_cli import audit

    assert callable(audit) and audit.__module__ == "audit_cli.api"
