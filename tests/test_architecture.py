"""One direction of flow: each layer imports only the layers below it, nothing imports in a
circle, and the core reaches no channel SDK, however deep the imports go."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOT = ROOT / "bot"
# Lowest first. The composition root (app) and the command line sit above everything they wire.
LAYERS = ["store", "core", "content", "runtime", "channels", "top"]
FORBIDDEN = ("telegram", "httpx", "starlette", "uvicorn", "aiohttp", "requests", "bot.channels", "bot.runtime")
MAX_LINES = 450


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else "top"


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function (TYPE_CHECKING blocks too)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    package = module_of(path).rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # "from bot.core import flows"
    return names


def graph() -> dict[str, set[str]]:
    files = {module_of(p): p for p in BOT.rglob("*.py")}
    return {m: {n for n in imports_of(p) if n in files and n != m} for m, p in files.items()}


def test_each_layer_imports_only_the_layers_below_it():
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            if LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module)):
                wrong.append(f"{module} ({layer_of(module)}) imports {target} ({layer_of(target)})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_circles():
    edges = graph()
    # Package __init__ files import nothing of their own here; a module and its package are not a circle.
    state: dict[str, int] = {}
    circles = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt):] + [nxt]) if nxt in path else f"{node} -> {nxt}")
            elif state.get(nxt) is None:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in sorted(edges):
        if state.get(node) is None:
            visit(node, [node])
    assert not circles, "\n".join(circles)


def test_the_core_reaches_no_channel_sdk_however_deep():
    files = {module_of(p): p for p in BOT.rglob("*.py")}
    edges = graph()
    for module in (m for m in files if layer_of(m) in ("core", "store")):
        seen, todo = set(), [module]
        while todo:
            m = todo.pop()
            if m in seen:
                continue
            seen.add(m)
            bad = {n for n in imports_of(files[m]) if any(n == x or n.startswith(x + ".") for x in FORBIDDEN)}
            assert not bad, f"{module} reaches {bad} through {m}"
            todo += edges[m]


def test_no_module_is_longer_than_450_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in BOT.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES]
    assert not long, "split by responsibility: " + ", ".join(long)


def test_every_module_says_what_it_is():
    missing = [str(p.relative_to(ROOT)) for p in BOT.rglob("*.py") if ast.get_docstring(ast.parse(p.read_text())) is None]
    assert not missing, missing
