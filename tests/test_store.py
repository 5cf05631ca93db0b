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


async def test_claim_and_load_is_once_and_sees_the_committed_state(store):
    async with store.unit() as u:
        assert (await u.claim_and_load("web", "m1", "a")) == ConversationState()
        await u.save_state("web", "a", ConversationState(lang="id", pending="x", data={"n": 1}))
    async with store.unit() as u:
        assert (await u.claim_and_load("web", "m1", "a")) is None  # a re-delivery
        assert (await u.claim_and_load("web", "m2", "a")) == ConversationState(lang="id", pending="x", data={"n": 1})


async def test_deferred_writes_are_seen_inside_the_unit_and_lost_with_it(store):
    async with store.unit() as u:
        await u.save_state("web", "a", ConversationState(lang="en"))
        await u.log_turn("web", "a", "halo", "greeting", 1.0, None, None, "Halo!")
        assert (await u.load_state("web", "a")).lang == "en"  # the unit reads its own write
        assert [t["text"] for t in await u.recent_turns("web", "a")] == ["halo"]
    with pytest.raises(RuntimeError):
        async with store.unit() as u:
            await u.save_state("web", "a", ConversationState(lang="id"))
            await u.log_turn("web", "a", "lagi", None, 0.0, None, None, "?")
            raise RuntimeError("crash before commit")
    async with store.unit() as u:
        assert (await u.load_state("web", "a")).lang == "en"
        assert [t["text"] for t in await u.recent_turns("web", "a")] == ["halo"]


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
