"""The store contract (bot/store/base.py), run against every back end through the protocol only.

A back end joins by adding a factory to BACKENDS (which sets up and removes its database); no test
knows SQL or a file. SQLite's own internals (WAL, migrations, deferred writes) are tested in
tests/test_store_sqlite.py; PostgreSQL's workers side by side in tests/test_store_postgres.py. The
PostgreSQL tests skip when no server answers at 127.0.0.1:5432, and fail instead with
MIA_REQUIRE_POSTGRES set (CI).
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from contextlib import asynccontextmanager

import pytest

from bot.core.messages import Button, Reply, reply_of, to_payload
from bot.store.base import ConversationState
from bot.store.sqlite import SQLiteStore

POSTGRES_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
POSTGRES_DOWN = ("PostgreSQL not reachable at 127.0.0.1:5432: start it with "
                 "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
                 "to run the PostgreSQL contract tests")


@asynccontextmanager
async def sqlite_store(tmp_path):
    yield SQLiteStore(tmp_path / "contract.db")


async def _server():
    """A connection to the server's `postgres` database; skips (fails with MIA_REQUIRE_POSTGRES) without one."""
    asyncpg = pytest.importorskip("asyncpg")
    try:
        return await asyncpg.connect(POSTGRES_SERVER, timeout=5)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        if os.environ.get("MIA_REQUIRE_POSTGRES"):
            pytest.fail(f"{POSTGRES_DOWN} ({exc.__class__.__name__}: {exc})")
        pytest.skip(POSTGRES_DOWN)


@asynccontextmanager
async def postgres_database():
    """The URL of a fresh database, dropped afterwards (whoever is still connected)."""
    name = f"mia_test_{secrets.token_hex(6)}"
    server = await _server()
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
    finally:
        await server.close()
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        server = await _server()
        try:
            await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await server.close()


@asynccontextmanager
async def postgres_store(tmp_path):
    from bot.store.postgres import PostgresStore

    async with postgres_database() as url:
        yield PostgresStore(url)


# Each factory yields a store not yet opened; what it created goes when the test is over.
BACKENDS = {"sqlite": sqlite_store, "postgres": postgres_store}


def _sqlite_sibling(store, worker: str):
    return SQLiteStore(store.path, worker=worker)


def _postgres_sibling(store, worker: str):
    from bot.store.postgres import PostgresStore

    return PostgresStore(store.url, worker=worker)


# Another worker on the same database (another process, in production): for what workers share.
SIBLINGS = {"sqlite": _sqlite_sibling, "postgres": _postgres_sibling}


@pytest.fixture(params=sorted(BACKENDS))
async def store(request, tmp_path):
    async with BACKENDS[request.param](tmp_path) as s:
        await s.open()
        try:
            yield s
        finally:
            await s.close()  # the pool first: then its database can go


@pytest.fixture
async def other_worker(request, store):
    """A second store on the store's database, holding leases as another worker ("mia-2")."""
    other = SIBLINGS[request.node.callspec.params["store"]](store, "mia-2")
    await other.open()
    try:
        yield other
    finally:
        await other.close()


def note(text: str, **extra) -> dict:
    return to_payload(Reply(text), **extra)


# -- messages and conversations -----------------------------------------------------------


async def test_a_message_is_claimed_once_per_channel(store):
    async with store.unit() as u:
        assert await u.claim_message("telegram", "1")
        assert not await u.claim_message("telegram", "1")
        assert await u.claim_message("whatsapp", "1")
        assert (await u.claim_and_load("web", "m1", "a")) == ConversationState()
        assert (await u.claim_and_load("web", "m1", "a")) is None


async def test_state_and_turns_round_trip_and_a_failed_unit_leaves_nothing(store):
    async with store.unit() as u:
        await u.save_state("web", "a", ConversationState(lang="en", pending="office_for_region", data={"k": [1]}))
        await u.log_turn("web", "a", "halo", "greeting", 1.0, None, None, "Halo!")
        assert (await u.load_state("web", "a")).lang == "en"  # the unit reads its own writes
        assert [t["text"] for t in await u.recent_turns("web", "a")] == ["halo"]
    with pytest.raises(RuntimeError):
        async with store.unit() as u:
            await u.claim_message("web", "m9")
            await u.save_state("web", "a", ConversationState(lang="id"))
            await u.log_turn("web", "a", "lagi", None, 0.0, None, None, "?")
            raise RuntimeError("crash before the commit")
    async with store.unit() as u:
        assert await u.load_state("web", "a") == ConversationState("en", "office_for_region", {"k": [1]})
        assert await u.claim_message("web", "m9")  # the claim went with the rest
    turns = await store.recent_turns("web", "a", limit=5)
    assert [(t["text"], t["intent"], t["reply"]) for t in turns] == [("halo", "greeting", "Halo!")]


async def test_recent_turns_are_the_last_ones_oldest_first(store):
    async with store.unit() as u:
        for i in range(4):
            await u.log_turn("telegram", "7", f"q{i}", None, 0.0, None, None, f"r{i}")
    assert [t["text"] for t in await store.recent_turns("telegram", "7", limit=2)] == ["q2", "q3"]
    assert await store.recent_turns("telegram", "8") == []


# -- requests -----------------------------------------------------------------------------


async def test_requests_get_references_statuses_and_lists(store):
    fields = {"applicant_name": "Ibu Sari", "phone": "081234567890"}
    async with store.unit() as u:
        first = await u.create_request("telegram", "7", "palembang", "16.71", fields)
        second = await u.create_request("telegram", "7", "muaraenim", "16.03", {})
    assert first.ref.startswith(f"RKT-{time.gmtime().tm_year}-") and first.ref != second.ref
    assert first.status == "open" and first.fields == fields
    async with store.unit() as u:
        assert (await u.get_request(first.ref.lower())).ref == first.ref  # any case
        assert (await u.latest_request("telegram", "7")).ref == second.ref
        assert await u.latest_request("telegram", "8") is None
        await u.set_request_status(first.ref, "claimed", "Budi (1)")
    async with store.unit() as u:
        claimed = await u.get_request(first.ref)
    assert claimed.status == "claimed" and claimed.claimed_by == "Budi (1)" and claimed.claimed_at
    assert [r.ref for r in await store.list_requests()] == [first.ref, second.ref]
    assert [r.ref for r in await store.list_requests(office="muaraenim")] == [second.ref]
    assert [r.ref for r in await store.list_requests(status="claimed")] == [first.ref]


# -- outbox -------------------------------------------------------------------------------


async def test_outbox_rows_leave_in_order_per_chat_and_once(store):
    async with store.unit() as u:
        await u.enqueue("telegram", "-100", note("n1"))
        await u.enqueue("telegram", "-100", note("n2"))
        await u.enqueue("web", "s1", note("w1"))
    now = time.time() + 1
    due = await store.due_outbox(now)
    assert [(i.channel, i.payload["text"]) for i in due] == [("telegram", "n1"), ("telegram", "n2"), ("web", "w1")]
    assert [i.payload["text"] for i in await store.due_outbox(now, channels=["web"])] == ["w1"]
    assert [i.payload["text"] for i in await store.due_outbox(now, skip=[("telegram", "-100")])] == ["w1"]
    (first,) = await store.lease_outbox(now, 120, limit=1)  # rows are marked by the worker holding them
    assert await store.outbox_failed(first, "502", retry_at=now + 30)  # n1 waits: n2 waits behind it
    assert [i.payload["text"] for i in await store.due_outbox(now)] == ["w1"]
    assert await store.next_outbox_due(now) == pytest.approx(now + 30)
    for item in await store.lease_outbox(now + 31, 120):
        assert await store.outbox_sent(item, "m")
    assert await store.due_outbox(now + 60) == []
    assert await store.next_outbox_due(now + 60) is None


async def test_a_failed_row_given_up_holds_nothing_back(store):
    async with store.unit() as u:
        await u.enqueue("whatsapp", "62812", note("a"))
        await u.enqueue("whatsapp", "62812", note("b"))
    now = time.time() + 1
    (first,) = await store.lease_outbox(now, 120, limit=1)
    assert await store.outbox_failed(first, "403 blocked", retry_at=None)
    assert [i.payload["text"] for i in await store.due_outbox(now)] == ["b"]


async def test_leased_rows_wait_for_their_sender_until_released(store):
    async with store.unit() as u:
        ids = await u.enqueue_many("telegram", "7", [note("r1"), note("r2")], lease_seconds=30)
    assert len(ids) == 2 and ids[0] < ids[1]
    now = time.time()
    assert await store.due_outbox(now + 1) == []  # the channel sends them itself
    assert [i.payload["text"] for i in await store.due_outbox(now + 31)] == ["r1", "r2"]  # a crash: the worker does
    assert await store.release_outbox("telegram", ids[1:]) == 1
    assert await store.release_outbox("telegram") == 1  # at start-up: every lease this worker holds
    assert [i.payload["text"] for i in await store.due_outbox(now + 1)] == ["r1", "r2"]


async def test_a_leased_row_goes_to_one_worker_and_holds_its_chat(store, other_worker):
    async with store.unit() as u:
        await u.enqueue("telegram", "-100", note("n1"))
        await u.enqueue("telegram", "-100", note("n2"))
        await u.enqueue("telegram", "7", note("c1"))
    now = time.time() + 1
    first = await store.lease_outbox(now, 120, limit=1)
    assert [i.payload["text"] for i in first] == ["n1"]
    # The other worker gets neither n1 (leased) nor n2 (its chat's older row is in hand): c1 only.
    assert [i.payload["text"] for i in await other_worker.lease_outbox(now, 120)] == ["c1"]
    assert await other_worker.lease_outbox(now, 120) == []
    assert await other_worker.release_outbox(None) == 1  # its own lease (c1) at its restart, not n1
    await store.outbox_sent(first[0], "m1")
    assert [i.payload["text"] for i in await other_worker.lease_outbox(now, 120)] == ["n2", "c1"]
    # A worker that died: its leases run out and another takes the rows.
    async with store.unit() as u:
        await u.enqueue("whatsapp", "62812", note("w1"))
    assert [i.payload["text"] for i in await store.lease_outbox(now, 30)] == ["w1"]
    assert await other_worker.lease_outbox(now + 10, 30) == []
    assert [i.payload["text"] for i in await other_worker.lease_outbox(now + 31, 30)] == ["w1"]


async def test_only_the_worker_holding_a_row_renews_marks_or_releases_it(store, other_worker):
    """A sender renews its lease before each send and stops when it has lost a row: no worker sends,
    marks or releases a row another worker took over when its lease ran out."""
    async with store.unit() as u:
        for text in ("n1", "n2", "n3"):
            await u.enqueue("telegram", "-100", note(text))
    now = time.time()
    n1, n2, n3 = await store.lease_outbox(now, 30)
    ids = [n1.id, n2.id, n3.id]
    assert await other_worker.renew_outbox(ids, 30) == 0
    assert not await other_worker.outbox_sent(n1, "x")
    assert not await other_worker.outbox_failed(n1, "502", retry_at=None)
    assert await other_worker.release_outbox(None, ids) == 0
    assert await store.renew_outbox(ids, 30) == 3  # its holder renews them
    assert await store.outbox_sent(n1, "m1")
    assert await store.renew_outbox(ids, 30) == 2  # n1 is sent: nobody holds it any more
    # The lease ran out (the holder hung, or lost its database) and the other worker took n2 and n3.
    assert [i.payload["text"] for i in await other_worker.lease_outbox(now + 31, 120)] == ["n2", "n3"]
    assert await store.renew_outbox(ids, 30) == 0
    assert not await store.outbox_sent(n2, "late")
    assert not await store.outbox_failed(n3, "502", retry_at=now + 5)
    assert await store.release_outbox(None, ids) == 0
    assert await other_worker.outbox_sent(n2, "m2")  # still the other worker's to send
    # A lease that ran out is not renewed, even when nobody has taken its rows yet; its holder may hand them back.
    async with store.unit() as u:
        leased = await u.enqueue_many("whatsapp", "62812", [note("r1")], lease_seconds=0.2)
    await asyncio.sleep(0.3)
    assert await store.renew_outbox(leased, 30) == 0
    assert await store.release_outbox(None, leased) == 1


async def test_a_reply_waits_behind_an_earlier_one_still_pending(store):
    async with store.unit() as u:
        assert not await u.outbox_waiting("telegram", "7")
        await u.enqueue_many("telegram", "7", [note("r1")], lease_seconds=30)
    async with store.unit() as u:
        assert await u.outbox_waiting("telegram", "7")
        assert not await u.outbox_waiting("telegram", "8")
    (item,) = await store.due_outbox(time.time() + 31)
    await store.outbox_sent(item, "1")
    async with store.unit() as u:
        assert not await u.outbox_waiting("telegram", "7")


async def test_a_worker_finds_the_updates_it_kept(store, other_worker):
    assert await store.inbox_add("telegram", "201", "7", '{"update_id": 201}')
    assert await other_worker.inbox_add("telegram", "202", "8", '{"update_id": 202}')
    assert [chat for _, chat, _ in await store.inbox_pending("telegram", mine=True)] == ["7"]
    assert [chat for _, chat, _ in await other_worker.inbox_pending("telegram", mine=True)] == ["8"]
    assert len(await store.inbox_pending("telegram")) == 2


async def test_a_named_lease_has_one_holder_until_it_runs_out(store, other_worker):
    now = time.time()
    assert await store.take_lease("digest", 60, now=now)
    assert await store.take_lease("digest", 60, now=now + 30)  # renewed by its holder
    assert not await other_worker.take_lease("digest", 60, now=now + 60)
    assert await other_worker.take_lease("purge", 60, now=now)  # another lease is another matter
    assert await other_worker.take_lease("digest", 60, now=now + 91)  # the holder stopped renewing
    assert not await store.take_lease("digest", 60, now=now + 100)


async def test_a_webhook_update_is_kept_once_and_handled_in_order(store):
    assert await store.inbox_add("telegram", "101", "7", '{"update_id": 101}')
    assert not await store.inbox_add("telegram", "101", "7", '{"update_id": 101}')  # Telegram sent it again
    assert await store.inbox_add("telegram", "102", "8", '{"update_id": 102}')
    assert await store.inbox_add("telegram", "103", "7", '{"update_id": 103}')
    pending = await store.inbox_pending("telegram")
    assert [(chat, body) for _, chat, body in pending] == [
        ("7", '{"update_id": 101}'), ("8", '{"update_id": 102}'), ("7", '{"update_id": 103}')]
    assert [body for _, _, body in await store.inbox_pending("telegram", chat_id="7")] == [
        '{"update_id": 101}', '{"update_id": 103}']
    assert await store.inbox_pending("telegram", received_before=time.time() - 60) == []
    assert len(await store.inbox_pending("telegram", mine=True)) == 3  # this worker kept them
    await store.inbox_done(pending[0][0])
    await store.inbox_done(pending[1][0], error="ValueError")
    assert [body for _, _, body in await store.inbox_pending("telegram")] == ['{"update_id": 103}']
    assert await store.inbox_pending("whatsapp") == []
    # Retention: handled updates go with the rest; one not yet handled stays until it is.
    counts = await store.purge(time.time() + 1)
    assert counts["webhook_updates_deleted"] == 2
    assert len(await store.inbox_pending("telegram")) == 1


async def test_hits_are_counted_per_key_and_window(store, other_worker):
    assert [await store.count_hit("a", 60.0, 60.0) for _ in range(3)] == [(1, 0), (2, 0), (3, 0)]
    assert await other_worker.count_hit("a", 60.0, 60.0) == (4, 0)  # every worker counts into one window
    assert await store.count_hit("b", 60.0, 60.0) == (1, 0)
    assert await store.count_hit("a", 120.0, 60.0) == (1, 4)  # the next window, and the one before


async def test_typed_replies_survive_the_outbox(store):
    reply = Reply("<b>Permintaan baru</b>", (Button("Ambil", "RKT-2026-000001", "claim"),
                                            Button("Selesai", "RKT-2026-000001", "close")), html=True)
    async with store.unit() as u:
        await u.enqueue("telegram", "-100", to_payload(reply, bind={"kind": "request", "target": "RKT-2026-000001"}))
    (item,) = await store.due_outbox(time.time() + 1)
    assert reply_of(item.payload) == reply


async def test_staff_notices_are_found_by_their_message_and_their_target(store):
    async with store.unit() as u:
        await u.enqueue("telegram", "-100", note("notice", bind={"kind": "request", "target": "RKT-2026-000001"}))
        await u.enqueue("telegram", "-100", note("handoff", bind={"kind": "handoff", "target": "web:s1"}))
    for n, item in enumerate(await store.lease_outbox(time.time() + 1, 60)):
        await store.outbox_sent(item, str(500 + n))
    async with store.unit() as u:
        assert await u.find_staff_message("telegram", "-100", "500") == ("request", "RKT-2026-000001")
        assert await u.find_staff_message("telegram", "-100", "501") == ("handoff", "web:s1")
        assert await u.find_staff_message("telegram", "-200", "500") is None
        assert await u.staff_messages_of("request", "RKT-2026-000001") == [("telegram", "-100", "500")]
        assert await u.staff_messages_of("request", "RKT-2026-000002") == []
        assert await u.recent_outbox("telegram", "-100", time.time() - 60) == 2
        assert await u.recent_outbox("telegram", "-100", time.time() + 60) == 0


async def test_no_reader_sees_a_unit_before_it_commits(store):
    """The outbox worker reads outside any unit: a row of a transaction that then rolls back must
    never reach it (it would be sent, and the rolled-back reply would reach a citizen)."""
    entered = asyncio.Event()
    release = asyncio.Event()

    async def failing_unit():
        with pytest.raises(RuntimeError):
            async with store.unit() as u:
                await u.enqueue("telegram", "-100", note("never"))
                await u.load_state("telegram", "-100")  # the enqueue has reached the database
                entered.set()
                await release.wait()
                raise RuntimeError("rolled back")

    task = asyncio.create_task(failing_unit())
    await entered.wait()
    read = asyncio.create_task(store.due_outbox(time.time() + 1))
    await asyncio.sleep(0.2)  # the read runs (or waits) while the unit is open
    release.set()
    await task
    assert await read == []
    assert await store.due_outbox(time.time() + 1) == []


# -- web chat -----------------------------------------------------------------------------


async def test_web_transcripts_page_and_measure(store):
    async with store.unit() as u:
        ids = [await u.add_web_message("s1", "user" if i % 2 == 0 else "bot", f"pesan {i}",
                                       [{"title": "Menu", "payload": "menu", "kind": "say"}] if i % 2 else [])
               for i in range(5)]
        await u.add_web_message("s2", "user", "lain", [])
    assert ids == sorted(ids)
    rows = await store.web_messages("s1", limit=3)
    assert [r["text"] for r in rows] == ["pesan 0", "pesan 1", "pesan 2"]
    assert rows[1]["role"] == "bot" and rows[1]["buttons"][0]["payload"] == "menu"
    assert [r["text"] for r in await store.web_messages("s1", after=rows[-1]["id"])] == ["pesan 3", "pesan 4"]
    assert await store.web_transcript_bytes("s1") > await store.web_transcript_bytes("s2") > 0
    assert await store.web_transcript_bytes("nobody") == 0


async def test_one_turn_web_visits_expire_and_real_conversations_stay(store):
    async with store.unit() as u:
        for chat, turns in (("visit", 1), ("talk", 3)):
            await u.save_state("web", chat, ConversationState())
            for i in range(turns):
                await u.log_turn("web", chat, f"q{i}", None, 0.0, None, None, "r")
            await u.add_web_message(chat, "user", "q0", [])
    assert await store.expire_single_turn_web(time.time() + 1) == 1
    assert await store.web_messages("visit") == [] and await store.recent_turns("web", "visit") == []
    assert len(await store.recent_turns("web", "talk")) == 3


# -- WhatsApp -----------------------------------------------------------------------------


async def test_whatsapp_bodies_are_kept_once_until_handled(store):
    async with store.unit() as u:
        first = await u.store_whatsapp_update('{"entry": [1]}')
        replay = await u.store_whatsapp_update('{"entry": [1]}')
        other = await u.store_whatsapp_update('{"entry": [2]}')
    assert first is not None and replay is None and other is not None
    assert await store.pending_whatsapp_updates() == [(first, '{"entry": [1]}'), (other, '{"entry": [2]}')]
    await store.whatsapp_update_done(first, None)
    assert [row for row, _ in await store.pending_whatsapp_updates()] == [other]
    # What another worker left behind: only bodies older than the time asked for.
    assert await store.pending_whatsapp_updates(received_before=time.time() - 60) == []
    assert [row for row, _ in await store.pending_whatsapp_updates(received_before=time.time() + 1)] == [other]


async def test_a_worker_reads_its_own_whatsapp_bodies_and_others_only_when_left_20_s(store, other_worker):
    mine = await store.add_whatsapp_update('{"entry": [1]}')
    assert await store.add_whatsapp_update('{"entry": [1]}') is None  # a replay is kept once
    theirs = await other_worker.add_whatsapp_update('{"entry": [2]}')
    async with store.unit() as u:  # a body kept without a worker (before the migration): anyone's
        old = await u.store_whatsapp_update('{"entry": [3]}')
    assert None not in (mine, theirs, old)
    # After a receive, and at start: only the bodies this worker kept, at once.
    assert await store.pending_whatsapp_updates(mine=True) == [(mine, '{"entry": [1]}')]
    assert await other_worker.pending_whatsapp_updates(mine=True) == [(theirs, '{"entry": [2]}')]
    # The sweep: anyone's (another worker's, or nobody's) once 20 s old, not before.
    assert await store.pending_whatsapp_updates(received_before=time.time() - 20) == []
    assert [row for row, _ in await store.pending_whatsapp_updates(received_before=time.time() + 1)] == [
        mine, theirs, old]
    await other_worker.whatsapp_update_done(theirs, None)
    assert [row for row, _ in await store.pending_whatsapp_updates()] == [mine, old]

async def test_whatsapp_window_options_and_statuses(store):
    assert await store.whatsapp_contact("62812") is None
    now = time.time()
    assert await store.touch_whatsapp_contact("62812", now) == []
    await store.set_whatsapp_options("62812", ["Biaya paspor", "Syarat paspor"])
    assert await store.touch_whatsapp_contact("62812", now + 5) == ["Biaya paspor", "Syarat paspor"]
    contact = await store.whatsapp_contact("62812")
    assert contact["last_inbound_at"] == pytest.approx(now + 5)
    await store.close_whatsapp_window("62812")
    assert (await store.whatsapp_contact("62812"))["last_inbound_at"] < now - 86400
    assert await store.record_whatsapp_status("wamid.1", "delivered", "62812", None)
    assert not await store.record_whatsapp_status("wamid.1", "delivered", "62812", None)  # a replay
    assert await store.record_whatsapp_status("wamid.1", "read", "62812", None)


# -- review log, digest, confirmed examples, meta -------------------------------------------


async def test_the_review_log_is_labelled_decided_and_listed(store):
    async with store.unit() as u:
        await u.log_unanswered("web", "palembang", "sy mau bikin paspor", "menu",
                               [("passport_requirements", 41.0), ("svc_eazy_paspor", 30.0)], ref="r1")
        await u.log_unanswered("telegram", None, "resep rendang", "fallback", [])
        await u.log_unanswered("web", "muaraenim", "biaya paspor", "not_helpful", [("fees", 80.0)], ref="r2",
                               answered="fees")
        await u.label_unanswered("r1", "passport_requirements")
    rows = await store.review_items()
    assert [(r["text"], r["kind"]) for r in rows] == [("sy mau bikin paspor", "menu_choice"), ("resep rendang", "fallback"),
                                                      ("biaya paspor", "not_helpful")]
    assert rows[0]["chosen"] == "passport_requirements" and rows[2]["answered"] == "fees"  # a tap labels the row
    assert [r["text"] for r in await store.review_items(office="muaraenim")] == ["biaya paspor"]
    assert [r["text"] for r in await store.review_items(kinds=("fallback",))] == ["resep rendang"]
    assert len(await store.unanswered_since(0)) == 3
    assert await store.decide_review([rows[0]["id"], rows[1]["id"]], "dropped", None, "operator:ani") == 2
    assert await store.decide_review([rows[0]["id"]], "confirmed", "fees", "operator:ani") == 0  # open rows only
    assert [r["text"] for r in await store.review_items()] == ["biaya paspor"]
    assert len(await store.review_items(status=None)) == 3


async def test_digest_items_are_decided_once(store):
    item = await store.add_digest_item("kursi roda utk lansia", 2, ["services_list", "help"], [1, 2])
    got = await store.digest_item(item)
    assert got["example"] == "kursi roda utk lansia" and got["count"] == 2 and got["status"] == "open"
    assert got["candidates"] == ["services_list", "help"] and got["review_ids"] == [1, 2]
    assert await store.decide_digest_item(item, "added", "Operator Ani")
    assert not await store.decide_digest_item(item, "ignored", "Operator Budi")
    assert (await store.digest_item(item))["status"] == "added"
    assert await store.digest_item(item + 1000) is None


async def test_confirmed_examples_and_meta(store):
    await store.add_confirmed_example("kursi roda utk lansia", "services_list", "operator:ani")
    assert await store.confirmed_examples() == [{"text": "kursi roda utk lansia", "intent": "services_list"}]
    assert await store.get_meta("purge_last") is None
    assert await store.meta_default("web_secret", "a") == "a"
    assert await store.meta_default("web_secret", "b") == "a"  # the first writer wins
    await store.set_meta("purge_last", "123")
    assert await store.get_meta("purge_last") == "123"


# -- retention ----------------------------------------------------------------------------


async def test_purge_removes_what_is_personal_and_keeps_the_request_counts(store):
    async with store.unit() as u:
        request = await u.create_request("telegram", "7", "palembang", "16.71", {"phone": "081234567890"})
        await u.save_state("telegram", "7", ConversationState(data={"form": {"phone": "0812"}}))
        await u.log_turn("telegram", "7", "nomor saya 081234567890", None, 0.0, None, None, "ok")
        await u.log_unanswered("telegram", None, "[nomor]", "fallback", [])
        await u.add_web_message("s1", "user", "halo", [])
    await store.add_confirmed_example("contoh", "help", "operator")
    later = time.time() + 1
    counted = await store.purge(later, dry_run=True)
    assert counted["requests_anonymized"] == 1 and counted["turns_deleted"] == 1
    assert await store.recent_turns("telegram", "7")  # a dry run changes nothing
    counts = await store.purge(later)
    assert counts == counted
    async with store.unit() as u:
        kept = await u.get_request(request.ref)
        assert await u.load_state("telegram", "7") == ConversationState()
    assert kept.office == "palembang" and kept.status == "open" and kept.fields == {} and kept.chat_id == ""
    assert await store.recent_turns("telegram", "7") == []
    assert await store.review_items(status=None) == [] and await store.web_messages("s1") == []
    assert await store.confirmed_examples() == []


# -- the protocol is the whole contract -----------------------------------------------------


@pytest.mark.parametrize("protocol, module, implementation", [
    ("Store", "sqlite", "SQLiteStore"), ("Unit", "sqlite", "SQLiteUnit"),
    ("Store", "postgres", "PostgresStore"), ("Unit", "postgres", "PostgresUnit"),
])
def test_every_public_method_of_a_back_end_is_declared_with_its_meaning(protocol, module, implementation):
    """Callers use only what the protocol declares: a method a back end has and the protocol lacks
    would be one a second back end could miss."""
    import importlib
    import inspect

    import bot.store.base as base

    declared = getattr(base, protocol)
    impl = getattr(importlib.import_module(f"bot.store.{module}"), implementation)
    public = {n for n, f in inspect.getmembers(impl, inspect.isfunction) if not n.startswith("_")}
    missing = sorted(n for n in public if not (hasattr(declared, n) and inspect.getdoc(getattr(declared, n))))
    assert not missing, f"{implementation} has methods {protocol} does not declare (with a docstring): {missing}"
    for name in public & set(dir(declared)):
        want = list(inspect.signature(getattr(declared, name)).parameters)
        have = list(inspect.signature(getattr(impl, name)).parameters)
        assert have == want, f"{implementation}.{name}{have} differs from {protocol}.{name}{want}"


# -- the staff desk -------------------------------------------------------------------------


async def test_staff_accounts_links_and_sessions(store):
    now = time.time()
    assert await store.add_staff("Rina", "palembang", "link-1", now + 60)
    assert not await store.add_staff("Rina", "muaraenim", "link-2", now + 60)  # the name is taken
    assert await store.add_staff("Dedi", "muaraenim", "link-3", now - 1)  # a link already expired
    assert await store.staff_offices() == ["muaraenim", "palembang"]
    assert await store.redeem_staff_link("link-3", now) is None
    rina = await store.redeem_staff_link("link-1", now)
    assert rina["name"] == "Rina" and rina["office"] == "palembang"
    assert await store.redeem_staff_link("link-1", now) is None  # spent
    await store.create_staff_session("session-1", rina["id"], "csrf-1", now + 3600)
    assert await store.staff_session("session-1", now) == {"id": rina["id"], "name": "Rina", "office": "palembang",
                                                           "csrf": "csrf-1"}
    assert await store.staff_session("session-1", now + 7200) is None  # expired
    assert [(r["name"], r["office"]) for r in await store.list_staff()] == [("Dedi", "muaraenim"), ("Rina", "palembang")]
    assert await store.renew_staff_link("Dedi", "link-4", now + 60) and not await store.renew_staff_link("X", "l", 0)
    assert (await store.redeem_staff_link("link-4", now))["name"] == "Dedi"
    await store.end_staff_session("session-1")
    assert await store.staff_session("session-1", now) is None
    await store.create_staff_session("session-2", rina["id"], "csrf-2", now + 3600)
    assert await store.remove_staff("Rina") and not await store.remove_staff("Rina")
    assert await store.staff_session("session-2", now) is None  # its sessions went with it
    assert await store.staff_offices() == ["muaraenim"]


async def test_desk_notices_are_the_delivered_ones_of_the_office(store):
    async with store.unit() as u:
        await u.enqueue("desk", "muaraenim", note("permintaan baru", bind={"kind": "request", "target": "RKT-1"}))
        await u.enqueue("desk", "muaraenim", note("pesan warga", bind={"kind": "handoff", "target": "web:s1"}))
        await u.enqueue("desk", "palembang", note("lain kantor", bind={"kind": "handoff", "target": "web:s2"}))
    assert await store.desk_notices("muaraenim") == []  # not delivered yet
    for n, item in enumerate(await store.lease_outbox(time.time() + 1, 60)):
        await store.outbox_sent(item, f"d{n}")
    notices = await store.desk_notices("muaraenim")
    assert [(n["kind"], n["target"], n["payload"]["text"], n["message_id"]) for n in notices] == [
        ("request", "RKT-1", "permintaan baru", "d0"), ("handoff", "web:s1", "pesan warga", "d1")]
    assert [n["payload"]["text"] for n in await store.desk_notices("muaraenim", threads=1)] == ["pesan warga"]


async def test_the_desk_keeps_whole_threads_and_every_request_still_waiting(store):
    """A busy office's newer notices never push an open request, or a thread's first notice (the
    conversation so far), off its desk."""
    async with store.unit() as u:
        waiting = await u.create_request("web", "w1", "muaraenim", "1603", {"applicant_name": "A"})
        done = await u.create_request("web", "w2", "muaraenim", "1603", {"applicant_name": "B"})
        await u.set_request_status(done.ref, "done", "Dedi")
        for ref in (waiting.ref, done.ref):
            await u.enqueue("desk", "muaraenim", note(f"permintaan {ref}", bind={"kind": "request", "target": ref}))
        await u.enqueue("desk", "muaraenim", note("riwayat s1", bind={"kind": "handoff", "target": "web:s1"}))
        for n in range(5):
            await u.enqueue("desk", "muaraenim", note(f"s2 #{n}", bind={"kind": "handoff", "target": "web:s2"}))
        await u.enqueue("desk", "muaraenim", note("s1 lagi", bind={"kind": "handoff", "target": "web:s1"}))
    for n, item in enumerate(await store.lease_outbox(time.time() + 1, 60)):
        await store.outbox_sent(item, f"d{n}")
    notices = await store.desk_notices("muaraenim", threads=2)
    by_thread: dict = {}
    for n in notices:
        by_thread.setdefault(n["target"], []).append(n["payload"]["text"])
    assert by_thread == {waiting.ref: [f"permintaan {waiting.ref}"],  # open, however old
                         "web:s1": ["riwayat s1", "s1 lagi"],  # the whole thread, its first notice too
                         "web:s2": [f"s2 #{n}" for n in range(5)]}
    assert [n["id"] for n in notices] == sorted(n["id"] for n in notices)
