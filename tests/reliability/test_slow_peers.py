"""A slow, failing or rate-limited Telegram or Graph API never holds up the other conversations.

The real PTB Application polls the local Bot API server, which is told to answer one
citizen's chat only after 7 s (past PTB's 5 s timeout) with a 502, to rate-limit one office's
staff chat (429 with retry_after) and to fail the other's with 502s. Meanwhile other citizens
ask questions; their answers must come as fast as usual, and everything held up must arrive
once the peer recovers, in order, with retry_after honoured. The same for WhatsApp: one chat's
send hanging on the Graph API must not hold up the other chats' answers.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import time

import httpx
import pytest

from bot.app import MiaApp
from tests.fakes.botapi import BotApiServer
from tests.test_telegram_e2e import STAFF_MRE, STAFF_PLG, World, settings_for

pytestmark = pytest.mark.reliability

SLOW_CITIZEN = 801
OTHERS = list(range(811, 821))
QUESTIONS = ["biaya paspor brp", "syarat bikin paspor apa aja", "sy dr lahat bikin paspor dmn",
             "lapor rakit itu apa", "jam buka kantor imigrasi"]
REF = re.compile(r"RKT-\d{4}-\d{6}")


async def attempts(http: httpx.AsyncClient, chat_id: int) -> list[float]:
    return (await http.get("/_test/attempts", params={"chat_id": chat_id})).json()


async def fail(http: httpx.AsyncClient, chat_id: int, **how) -> None:
    await http.post("/_test/fail", json={"chat_id": chat_id, **how})


async def request(world: World, chat_id: int, region: str) -> tuple[str, float]:
    """A whole Lapor Rakit request by typed answers; returns its reference and when the citizen's
    confirmation reached the Bot API."""
    steps = ["tolong petugas datang ke rumah, ibu sy sakit stroke mau bikin paspor", "Siti Aminah", "Anak",
             "0812 3456 7890", "Jl. Merdeka No. 5", region, "stroke, tidak bisa berjalan", "Senin"]
    for text in steps:
        await world.say(chat_id, text, timeout=20)
    done = await world.say(chat_id, "Ya, kirim", timeout=20)
    return REF.search(done["text"]).group(0), done["_sent_at"]


async def test_slow_and_failing_peers_do_not_block_others(tmp_path):
    botapi = BotApiServer().start()
    app = MiaApp(settings_for(botapi, tmp_path / "mia.db"))
    await app.start()
    world = World(botapi)
    http = httpx.AsyncClient(base_url=botapi.url, timeout=30)

    async def answered_in(chat_id: int, text: str) -> float:
        started = time.monotonic()
        await world.say(chat_id, text, timeout=20)
        return time.monotonic() - started - 0.15  # say() waits 0.15 s for a possible second message

    async def ten_others(offset: int) -> list[float]:
        return await asyncio.gather(*(answered_in(c, QUESTIONS[(i + offset) % len(QUESTIONS)])
                                      for i, c in enumerate(OTHERS)))

    try:
        baseline = await ten_others(0)  # every peer healthy

        # 1. One citizen's chat hangs: the Bot API answers after 7 s (past PTB's 5 s timeout).
        await fail(http, SLOW_CITIZEN, code=502, delay=7)
        await world.send(SLOW_CITIZEN, "halo")
        while not await attempts(http, SLOW_CITIZEN):
            await asyncio.sleep(0.02)
        hung_at = (await attempts(http, SLOW_CITIZEN))[0]
        during = await ten_others(1)
        assert time.time() - hung_at < 5  # all ten were answered while that send was still hanging
        assert await world.bot_messages(SLOW_CITIZEN) == []

        # 2. The hanging reply is now the outbox worker's: its retry hangs too, and meanwhile a
        #    request's notification to the (healthy) Palembang staff chat must leave at once.
        while len(await attempts(http, SLOW_CITIZEN)) < 2:
            await asyncio.sleep(0.05)
        plg_ref, confirmed = await request(world, OTHERS[0], "palembang")
        [notice] = await world.wait_bot(STAFF_PLG, 1, timeout=20)
        notice_delay = notice["_sent_at"] - confirmed  # both as the Bot API server received them
        assert plg_ref in notice["text"] and notice_delay < 2.0, notice_delay

        # 3. The Muaraenim staff chat rate-limited (429, retry_after 3 s) and then down (502).
        await fail(http, STAFF_MRE, code=429, retry_after=3)
        mre_ref, _ = await request(world, OTHERS[1], "lahat")
        while len(await attempts(http, STAFF_MRE)) < 2:
            await asyncio.sleep(0.05)
        await fail(http, STAFF_MRE, code=502)
        await asyncio.sleep(1.0)
        await fail(http, STAFF_MRE)
        [mre_notice] = await world.wait_bot(STAFF_MRE, 1, timeout=20)
        tries = await attempts(http, STAFF_MRE)
        assert mre_ref in mre_notice["text"]
        assert tries[1] - tries[0] >= 3 - 0.05, tries  # retry_after honoured

        # 4. The slow chat recovers: its reply arrives, once.
        await fail(http, SLOW_CITIZEN)
        replies = await world.wait_bot(SLOW_CITIZEN, 1, timeout=30)
        await asyncio.sleep(1.0)
        assert len(await world.bot_messages(SLOW_CITIZEN)) == 1 and "MIA" in replies[0]["text"]
    finally:
        await world.close()
        await http.aclose()
        await app.stop()
        botapi.stop()

    print(f"\n10 other citizens at once while one chat hung: median {statistics.median(during):.2f} s, worst "
          f"{max(during):.2f} s (all healthy: median {statistics.median(baseline):.2f} s, worst {max(baseline):.2f} s); "
          f"a Palembang notification left {notice_delay:.2f} s after its confirmation while the worker's retry "
          f"to the hanging chat was in hand; Muaraenim's 429 retry_after 3 s: next attempt after "
          f"{tries[1] - tries[0]:.1f} s, {len(tries)} attempts in all", flush=True)
    assert max(during) < max(2.0, 3 * max(baseline)), (during, baseline)


async def test_a_hanging_graph_api_send_does_not_hold_up_other_whatsapp_chats(tmp_path):
    from tests.fakes.graphapi import GraphApiServer
    from tests.test_whatsapp import post, shown_text, text_message, update, whatsapp_settings

    graph = GraphApiServer().start()
    app = MiaApp(whatsapp_settings(tmp_path / "mia.db", graph.url))
    await app.start()
    slow, others = "628100000001", [f"6281000001{i:02d}" for i in range(10)]
    try:
        async with httpx.AsyncClient(base_url=graph.url) as http:
            await http.post("/_test/fail", json={"to": slow, "code": 500, "delay": 8})
            assert (await post(app, update(text_message("halo", sender=slow)))).status_code == 200
            await asyncio.sleep(0.3)  # its reply's send is now hanging
            started = time.monotonic()
            for number in others:
                assert (await post(app, update(text_message("biaya paspor brp", sender=number)))).status_code == 200
            deadline = started + 5
            while {b["to"] for b in graph.sent} < set(others):
                assert time.monotonic() < deadline, f"answered: {sorted({b['to'] for b in graph.sent})}"
                await asyncio.sleep(0.05)
            others_done = time.monotonic() - started
            assert all("Rp" in shown_text(b) for b in graph.sent if b["to"] in others)
            await http.post("/_test/fail", json={"to": slow})
        deadline = time.monotonic() + 30
        while not any(b["to"] == slow for b in graph.sent):  # the outbox retries it once the API recovers
            assert time.monotonic() < deadline, "the slow chat's reply never arrived"
            await asyncio.sleep(0.1)
    finally:
        await app.stop()
        graph.stop()
    print(f"\nWhatsApp: 10 other chats answered within {others_done:.2f} s while one chat's send hung 8 s; "
          f"its reply arrived after the API recovered", flush=True)
