"""SQLite's own internals: the file (WAL, versioned schema) and deferred writes.
The store contract every back end meets is tests/test_store_contract.py."""

from __future__ import annotations

import asyncio
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


async def cancelled_while_the_file_is_locked(tmp_path, work) -> None:
    """Run `work` in a task and cancel it (a stop's grace ran out) while its first hop waits on
    aiosqlite's thread for the write lock another process holds; that hop runs once the lock goes."""
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # e.g. `mia db purge` in another process
    task = asyncio.create_task(work())
    await asyncio.sleep(0.2)  # the first hop waits for the lock
    task.cancel()
    await asyncio.sleep(0.1)
    other.execute("COMMIT")  # the cancelled hop runs now
    other.close()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_unit_cancelled_while_waiting_for_the_write_lock_leaves_no_transaction_open(store, tmp_path):
    async def answer():
        async with store.unit() as u:
            await u.claim_and_load("telegram", "m1", "42")  # BEGIN IMMEDIATE and the claim: one hop

    await cancelled_while_the_file_is_locked(tmp_path, answer)
    async with store.unit() as u:  # the next unit works, and the message was never answered
        assert await u.claim_and_load("telegram", "m1", "42") is not None


async def test_a_commit_cancelled_while_waiting_for_the_write_lock_rolls_back_its_failed_write(store, tmp_path):
    async with store.unit() as u:
        await u.claim_message("web", "m1")

    async def answer():
        async with store.unit() as u:  # only deferred writes: BEGIN, the writes and COMMIT go in one hop
            await u.save_state("web", "b", ConversationState(lang="en"))
            u._defer("INSERT INTO processed_messages (channel, message_id, created_at) VALUES (?, ?, ?)",
                     ("web", "m1", 0.0))  # fails before the COMMIT

    await cancelled_while_the_file_is_locked(tmp_path, answer)
    async with store.unit() as u:
        assert (await u.load_state("web", "b")) == ConversationState()
        assert await u.claim_message("web", "m2")
