"""Two workers on one PostgreSQL database: migrations at once, one conversation, one message id.

Each PostgresStore stands for a worker process (its own pool of connections). Skipped when no
server answers at 127.0.0.1:5432; with MIA_REQUIRE_POSTGRES set (CI) that fails instead.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest

from bot.store.base import ConversationState
from tests.test_store_contract import postgres_database


@pytest.fixture
async def workers():
    """Two stores on one fresh database, not opened yet; closed (then the database dropped) after."""
    from bot.store.postgres import PostgresStore

    async with postgres_database() as url:
        stores = [PostgresStore(url), PostgresStore(url)]
        async with AsyncExitStack() as stack:
            for s in stores:
                stack.push_async_callback(s.close)
            yield stores


async def test_two_workers_starting_at_once_apply_each_migration_once(workers):
    from bot.store.postgres import MIGRATIONS

    first, second = workers
    await asyncio.gather(first.open(), second.open())
    assert await first.schema_version() == await second.schema_version() == len(MIGRATIONS)
    await first.close()
    await first.open()  # a restart finds nothing to do
    assert await first.schema_version() == len(MIGRATIONS)
    async with first.unit() as u:  # the schema is whole: a unit of work runs
        assert await u.claim_and_load("web", "m1", "s1") == ConversationState()


async def test_concurrent_units_of_one_chat_lose_no_update(workers):
    """20 messages of one chat at once, half to each worker: each reads the counter and writes it
    back plus one. Without the conversation's lock two would read the same value."""
    await asyncio.gather(*(s.open() for s in workers))

    async def one(n: int) -> None:
        async with workers[n % 2].unit() as u:
            state = await u.claim_and_load("telegram", f"m{n}", "42")
            assert state is not None
            await asyncio.sleep(0.01)  # the others try meanwhile
            state.data["count"] = state.data.get("count", 0) + 1
            await u.save_state("telegram", "42", state)
            await u.log_turn("telegram", "42", f"q{n}", None, 0.0, None, None, "r")

    await asyncio.gather(*(one(n) for n in range(20)))
    for store in workers:
        async with store.unit() as u:
            assert (await u.load_state("telegram", "42")).data["count"] == 20
        assert len(await store.recent_turns("telegram", "42", limit=50)) == 20


async def test_a_message_claimed_by_one_worker_is_refused_by_the_other(workers):
    first, second = workers
    await asyncio.gather(first.open(), second.open())
    async with first.unit() as u:
        assert await u.claim_and_load("whatsapp", "wamid.1", "62812") == ConversationState()
    async with second.unit() as u:
        assert await u.claim_and_load("whatsapp", "wamid.1", "62812") is None
        assert not await u.claim_message("whatsapp", "wamid.1")

    # The same re-delivery reaching both workers at the same moment: exactly one handles it.
    async def claim(store) -> bool:
        async with store.unit() as u:
            claimed = await u.claim_message("telegram", "777")
            await asyncio.sleep(0.05)  # the other worker's claim arrives before this commits
            return claimed

    assert sorted(await asyncio.gather(claim(first), claim(second))) == [False, True]

    # A claim rolled back with its unit is free again for the other worker.
    with pytest.raises(RuntimeError):
        async with first.unit() as u:
            assert await u.claim_message("telegram", "778")
            raise RuntimeError("crash before the commit")
    async with second.unit() as u:
        assert await u.claim_message("telegram", "778")


async def test_two_workers_claiming_one_request_at_once_give_it_to_one(workers):
    """Staff press "Ambil" in the Telegram group and on the web desk at the same moment, each handled
    by another worker: the second must see the first's claim (StaffDesk reads, then writes)."""
    first, second = workers
    await asyncio.gather(first.open(), second.open())
    async with first.unit() as u:
        ref = (await u.create_request("telegram", "7", "palembang", "16.71", {})).ref

    async def claim(store, who: str) -> bool:
        async with store.unit() as u:
            request = await u.get_request(ref)
            await asyncio.sleep(0.05)  # the other press arrives meanwhile
            if request.status != "open":
                return False
            await u.set_request_status(ref, "claimed", who)
            await u.load_state(request.channel, request.chat_id)  # the citizen's chat: already held by this unit
            return True

    assert sorted(await asyncio.gather(claim(first, "Ani"), claim(second, "Budi"))) == [False, True]
    (request,) = await second.list_requests(status="claimed")
    assert request.claimed_by in ("Ani", "Budi")


async def test_two_citizens_asking_the_status_of_each_others_request_are_both_answered(workers):
    """Each unit holds its own citizen's conversation; reading another chat's request for /status
    must not wait for that chat, or the two units deadlock and PostgreSQL aborts one message."""
    first, second = workers
    await asyncio.gather(first.open(), second.open())
    refs = {}
    for chat in ("A", "B"):
        async with first.unit() as u:
            refs[chat] = (await u.create_request("telegram", chat, "palembang", "16.71", {})).ref
    both = asyncio.Barrier(2)

    async def status(store, chat: str, other: str):
        async with store.unit() as u:
            await u.claim_and_load("telegram", f"m-{chat}", chat)
            await both.wait()  # each now holds its own citizen's conversation
            return await asyncio.wait_for(u.get_request(refs[other], lock=False), 10)

    found = await asyncio.gather(status(first, "A", "B"), status(second, "B", "A"))
    assert [r.chat_id for r in found] == ["B", "A"]


async def test_web_limits_hold_across_workers(workers):
    """An address spreading its posts over two workers behind a load balancer gets the limit once,
    not once per worker; once refused, a worker asks the database no more until the window ends."""
    from bot.channels.limits import SharedRateLimiter

    await asyncio.gather(*(s.open() for s in workers))
    clock = [1_000_000.0]
    limiters = [SharedRateLimiter(s, "posts", 10, clock=lambda: clock[0]) for s in workers]
    admitted = [await limiters[n % 2].admit("203.0.113.9") for n in range(16)]
    assert admitted == [True] * 10 + [False] * 6
    assert await limiters[0].admit("198.51.100.1")  # another address has its own count
    calls = []
    original = workers[1].count_hit

    async def counted(*args, **kwargs):
        calls.append(args)
        return await original(*args, **kwargs)

    workers[1].count_hit = counted
    assert not await limiters[1].admit("203.0.113.9") and calls == []  # remembered: no database hop
    clock[0] += 60
    assert await limiters[1].admit("203.0.113.9") and len(calls) == 1  # a new window
