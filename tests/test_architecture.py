"""The core stays free of channel SDKs: a test walks its imports."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ["bot/assistant.py", "bot/content.py", "bot/knowledge.py", "bot/responses.py", "bot/messages.py",
        "bot/nlu", "bot/store", "bot/dialogue"]
FORBIDDEN = ("telegram", "httpx", "starlette", "uvicorn", "aiohttp", "requests", "bot.channels")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_imports_no_channel_sdk():
    files = []
    for item in CORE:
        p = ROOT / item
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p]
    assert files
    for f in files:
        bad = {n for n in imports_of(f) if any(n == x or n.startswith(x + ".") for x in FORBIDDEN)}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"
