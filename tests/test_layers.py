"""The import-layer contract of DESIGN.md §5, checked two ways.

1. Statically: every import statement in every module of `node` (function-level ones included,
   `if TYPE_CHECKING:` blocks excluded) is checked against the layer table below.
2. At run time: every portable (L0) module is imported in a fresh interpreter, and what it pulled
   into `sys.modules` is checked against the forbidden list.
"""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "node"

# Standard-library modules portable code may import at run time (the subset MicroPython has).
L0_STDLIB = {"hashlib", "struct", "binascii", "collections", "sys", "micropython", "math"}
# Never in L0, checked at run time in a fresh interpreter.
L0_FORBIDDEN_RUNTIME = [
    "asyncio", "socket", "os", "time", "logging", "sqlite3", "dbus_fast", "dbus_next", "bleak",
    "serial", "nacl", "threading", "selectors", "zeroconf", "subprocess", "random", "secrets",
]  # fmt: skip

# node.pipe: the in-memory transport (tests, benchmarks), an L1 adapter like the others.
L1_GROUPS = [
    "node.store", "node.lan", "node.radio", "node.console.serial", "node.crypto._nacl", "node.pipe",
]  # fmt: skip


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


# The transport seam (node/link.py): the Link, Listener and Dialer protocols that L1 transports
# implement and L2 consumes. L1 and L2 may import it; it imports only L0 and the standard library.
SEAM = "node.link"


def layer_of(name: str) -> str:
    """'L0', 'seam', 'L1:<group>', 'member' or 'L2'."""
    if name == SEAM:
        return "seam"
    for group in L1_GROUPS:
        if name == group or name.startswith(group + "."):
            return "L1:" + group
    if name in ("node._compat", "node.errors", "node.varint", "node.console.commands"):
        return "L0"
    for l0 in ("node.sync", "node.proto", "node.crypto", "node.console"):
        if name == l0 or name.startswith(l0 + "."):
            return "L0"
    if name == "node.member" or name.startswith("node.member."):
        return "member"
    return "L2"


def all_modules() -> list[tuple[str, Path]]:
    return sorted((module_name(p), p) for p in PACKAGE.rglob("*.py"))


def runtime_imports(path: Path, name: str) -> list[tuple[int, str]]:
    """Absolute names imported at run time (TYPE_CHECKING blocks skipped)."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[int, str]] = []
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name):
            if node.test.id == "TYPE_CHECKING":
                for child in node.orelse:
                    visit(child)
                return
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod in ("node",) or mod.startswith("node.") or node.level:
                # `from node.x import y` may import submodule y.
                for alias in node.names:
                    sub = mod + "." + alias.name
                    found.append(
                        (
                            node.lineno,
                            sub
                            if (ROOT / (sub.replace(".", "/") + ".py")).exists()
                            or (ROOT / sub.replace(".", "/")).is_dir()
                            else mod,
                        )
                    )
            else:
                found.append((node.lineno, mod))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def allowed(importer: str, imported: str) -> bool:
    # node.sync and node.proto meet only in the app (DESIGN.md §5).
    for a, b in (("node.sync", "node.proto"), ("node.proto", "node.sync")):
        if _within(importer, a) and _within(imported, b):
            return False
    src = layer_of(importer)
    top = imported.split(".")[0]
    if top != "node":
        if src == "L0":
            return top in L0_STDLIB
        return True
    if imported == "node":
        return src == "L2"
    dst = layer_of(imported)
    if src == "L2":
        return True
    if dst == "L2":
        return False
    if src == "L0":
        return dst == "L0"
    if src == "member":
        return dst in ("L0", "member")
    if src == "seam":
        return dst == "L0"
    # An L1 adapter: L0, the transport seam and its own package only.
    return dst in ("L0", "seam") or dst == src


def test_layer_table_covers_every_module() -> None:
    names = [name for name, _ in all_modules()]
    assert "node.errors" in names and "node._compat" in names
    assert layer_of("node.sync.dagcbor") == "L0"
    assert layer_of("node.crypto._nacl") == "L1:node.crypto._nacl"
    assert layer_of("node.app.cli") == "L2"


@pytest.mark.parametrize(("name", "path"), all_modules(), ids=[n for n, _ in all_modules()])
def test_static_imports_respect_layers(name: str, path: Path) -> None:
    bad = [
        "line %d imports %s (%s may not import %s)"
        % (line, mod, layer_of(name), layer_of(mod) if mod.startswith("node") else mod)
        for line, mod in runtime_imports(path, name)
        if not allowed(name, mod)
    ]
    assert not bad, "%s breaks the layer rules:\n%s" % (name, "\n".join(bad))


def test_static_checker_catches_violations() -> None:
    assert not allowed("node.sync.entry", "asyncio")
    assert not allowed("node.sync.entry", "node.store.sqlite")
    assert not allowed("node.store.sqlite", "node.lan.tcp")
    assert not allowed("node.crypto.keys", "nacl")
    assert not allowed("node.store.sqlite", "node.app.daemon")
    assert allowed("node.store.sqlite", "node.sync.entry")
    assert allowed("node.app.daemon", "node.store.sqlite")
    assert not allowed("node.sync.reconcile", "node.proto.session")
    assert not allowed("node.proto.session", "node.sync.entry")
    assert allowed("node.lan.tcp", "node.link")
    assert allowed("node.app.daemon", "node.link")
    assert not allowed("node.link", "node.lan.tcp")
    assert not allowed("node.link", "node.app.peer")
    assert not allowed("node.sync.entry", "node.link")


L0_MODULES = [name for name, _ in all_modules() if layer_of(name) == "L0"]


@pytest.mark.parametrize("name", L0_MODULES)
def test_portable_module_pulls_in_nothing_forbidden(name: str) -> None:
    probe = (
        "import sys, json\n"
        "before = set(sys.modules)\n"
        "import %s\n"
        "print(json.dumps(sorted(set(sys.modules) - before)))\n" % name
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    pulled = json.loads(out)
    bad = sorted(
        m for m in pulled if m.split(".")[0] in L0_FORBIDDEN_RUNTIME or m.startswith("node.app")
    )
    assert not bad, "%s pulled in %s" % (name, bad)


MAX_MODULE_LINES = 600


def test_no_module_is_over_600_lines() -> None:
    """The style rule (issue 8 §2): no module in node/ is over 600 lines."""
    lines = {name: len(path.read_text().splitlines()) for name, path in all_modules()}
    over = {name: n for name, n in lines.items() if n > MAX_MODULE_LINES}
    assert not over, "split these modules: %s" % over


def test_layout_md_lists_every_l0_module() -> None:
    """docs/layout.md's table of L0 modules names each L0 module with code, and nothing else."""
    text = (ROOT / "docs" / "layout.md").read_text()
    begin, end = "<!-- l0-modules -->\n", "<!-- /l0-modules -->\n"
    assert text.count(begin) == 1 and text.count(end) == 1, "markers missing in docs/layout.md"
    listed: set[str] = set()
    for row in text[text.index(begin) + len(begin) : text.index(end)].splitlines()[2:]:
        first = row.split("|")[1].strip()
        folder = ""
        for item in first.split(", "):
            path = item if "/" in item else folder + item
            folder = path.rpartition("/")[0] + "/"
            listed.add(path)
    wanted = {
        str(path.relative_to(ROOT))
        for name, path in all_modules()
        if layer_of(name) == "L0" and path.name != "__init__.py"
    }
    assert listed == wanted, "missing: %s; not L0 modules: %s" % (
        sorted(wanted - listed),
        sorted(listed - wanted),
    )
