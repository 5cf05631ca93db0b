"""SQLite's own internals: the file (WAL, versioned schema) and deferred writes.
The store contract every back end meets is tests/test_store_contract.py."""

from __future__ import annotations

import sqlite3

import pytest

from bot.store.base import ConversationState
from bot.store.sqlite import MIGRATIONS, SQLiteStore


@pytest.fixture
async def store(tmp_path):
    s = SQLiteStore(tmp_path / "store.db")
    await s.open()
    yield s
    await s.close()


async def test_file_is_wal_with_versioned_schema(tmp_path):
    path = tmp_path / "v.db"
    s = SQLiteStore(path)
    await s.open()
    assert await s.schema_version() == len(MIGRATIONS)
    await s.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    again = SQLiteStore(path)  # reopening applies nothing twice
    await again.open()
    assert await again.schema_version() == len(MIGRATIONS)
    await again.close()


async def test_a_failing_deferred_write_rolls_back_the_whole_unit(store, tmp_path):
    async with store.unit() as u:
        await u.claim_message("web", "m1")
    with pytest.raises(sqlite3.IntegrityError):
        async with store.unit() as u:
            await u.save_state("web", "b", ConversationState(lang="en"))
            u._defer("INSERT INTO processed_messages (channel, message_id, created_at) VALUES (?, ?, ?)",
                     ("web", "m1", 0.0))  # violates the primary key at COMMIT time
    async with store.unit() as u:
        assert (await u.load_state("web", "b")) == ConversationState()  # the state write went with it
        assert await u.claim_message("web", "m3")  # and the store still works
