"""The Store contract, run against every implementation (today: SQLite on a real file)."""

from __future__ import annotations

import sqlite3

import pytest

from bot.store.base import ConversationState
from bot.store.sqlite import MIGRATIONS, SQLiteStore


@pytest.fixture(params=["sqlite-file"])
async def store(request, tmp_path):
    s = SQLiteStore(tmp_path / "store.db")
    await s.open()
    yield s
    await s.close()


async def test_claim_is_once_per_channel_and_id(store):
    async with store.unit() as u:
        assert await u.claim_message("telegram", "1")
        assert not await u.claim_message("telegram", "1")
        assert await u.claim_message("whatsapp", "1")


async def test_state_round_trip(store):
    async with store.unit() as u:
        assert (await u.load_state("web", "a")) == ConversationState()
        await u.save_state("web", "a", ConversationState(lang="en", pending="office_for_region", data={"k": [1]}))
    async with store.unit() as u:
        state = await u.load_state("web", "a")
    assert state == ConversationState(lang="en", pending="office_for_region", data={"k": [1]})


async def test_failed_unit_leaves_nothing(store):
    with pytest.raises(RuntimeError):
        async with store.unit() as u:
            await u.claim_message("web", "m1")
            await u.save_state("web", "a", ConversationState(pending="x"))
            raise RuntimeError("crash in the middle")
    async with store.unit() as u:
        assert await u.claim_message("web", "m1")  # the claim was rolled back with the rest
        assert (await u.load_state("web", "a")).pending is None


async def test_turns_are_logged_in_order(store):
    async with store.unit() as u:
        for i in range(3):
            await u.log_turn("web", "a", f"q{i}", "greeting", 1.0, None, None, f"r{i}")
    turns = await store.recent_turns("web", "a", limit=2)
    assert [t["text"] for t in turns] == ["q1", "q2"]


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
