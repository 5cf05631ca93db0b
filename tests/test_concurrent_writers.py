"""Several MIA processes on one SQLite file: no "database is locked" reaches a citizen, no write is lost."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

from tests.conftest import ROOT

WORKER = r"""
import asyncio, sys
from pathlib import Path
from bot.core.assistant import Assistant
from bot.core.content import Content
from bot.core.messages import Incoming
from bot.store.sqlite import SQLiteStore

async def main(db, worker, n):
    store = SQLiteStore(db)
    await store.open()
    assistant = Assistant(Content.load(Path(".")), store)
    texts = ["biaya paspor brp", "kantor imigrasi utk lahat dimana", "halo", "syarat paspor apa aja"]
    answered = 0
    for i in range(n):
        # every worker also writes to the same shared conversation, to collide on purpose
        chat = "shared" if i % 3 == 0 else f"w{worker}-{i % 7}"
        replies = await assistant.handle(Incoming("load", chat, texts[i % len(texts)], f"{worker}-{i}"))
        answered += bool(replies)
    await store.close()
    print(answered)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_four_processes_one_database(tmp_path):
    db = tmp_path / "shared.db"
    n = 150
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(db), str(w), str(n)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for w in range(4)]
    results = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
        assert "database is locked" not in err
        assert int(out.strip()) == n  # every message answered
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM processed_messages").fetchone()[0] == 4 * n
        assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 4 * n  # no write lost
        shared = conn.execute("SELECT count(*) FROM turns WHERE chat_id = 'shared'").fetchone()[0]
        assert shared == 4 * len(range(0, n, 3))
