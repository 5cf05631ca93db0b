"""Abuse limits of the web chat (issue 13, item 1): new sessions and messages per client address,
the trusted-proxy rule, one-turn conversations expiring, the store-size guard."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import httpx
import pytest
from pydantic import ValidationError

from bot.app import MiaApp
from bot.channels.limits import RateLimiter, client_address
from bot.runtime.config import parse_networks
from bot.runtime.config import Settings
from bot.core.messages import Incoming
from tests.fakes.recording import RecordingSender

OPERATORS = "-1009"
PROXY = parse_networks("127.0.0.1, 10.0.0.0/8")


def test_forwarded_address_only_from_a_trusted_proxy():
    assert client_address("203.0.113.9", "198.51.100.1", PROXY) == "203.0.113.9"  # not a proxy: ignored
    assert client_address("127.0.0.1", "198.51.100.1", PROXY) == "198.51.100.1"
    assert client_address("127.0.0.1", None, PROXY) == "127.0.0.1"
    # What the client wrote itself stands left of what the proxies appended: not believed.
    assert client_address("127.0.0.1", "1.2.3.4, 198.51.100.1, 10.1.2.3", PROXY) == "198.51.100.1"
    assert client_address("127.0.0.1", "10.0.0.5, 10.1.2.3", PROXY) == "127.0.0.1"  # only proxies
    assert client_address("127.0.0.1", "1.2.3.4, not-an-ip", PROXY) == "127.0.0.1"
    assert client_address("127.0.0.1", "198.51.100.1", ()) == "127.0.0.1"  # no proxy configured
    assert client_address("127.0.0.1", " 2001:db8::1 ", PROXY) == "2001:db8::1"


def test_trusted_proxies_setting_is_checked():
    assert Settings(_env_file=None, mia_web_trusted_proxies="127.0.0.1,10.0.0.0/8").mia_web_trusted_proxies
    with pytest.raises(ValidationError):
        Settings(_env_file=None, mia_web_trusted_proxies="localhost")


def test_rate_limiter_window_per_address_and_bounded_memory():
    now = [0.0]
    limiter = RateLimiter(3, window=60, max_addresses=100, clock=lambda: now[0])
    assert [limiter.allow("a") for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("b")  # another address has its own count
    now[0] = 59.9
    assert not limiter.allow("a")
    now[0] = 60.0
    assert limiter.allow("a")  # the first events left the window
    for n in range(1000):
        limiter.allow(f"x{n}")
    assert len(limiter._seen) == 100
    assert RateLimiter(0).allow("a")  # 0: no limit


@pytest.fixture
async def mia(db_path):
    settings = Settings(_env_file=None, mia_db_path=db_path, mia_web_port=0, mia_outbox_poll_seconds=0.1,
                        mia_web_new_sessions_per_minute=3, mia_web_messages_per_minute=8,
                        mia_web_trusted_proxies="127.0.0.1", mia_operator_telegram_chat=OPERATORS,
                        mia_reload_enabled=False)
    app = MiaApp(settings)
    await app.start()
    app.web.tarpit_seconds = 0.05
    app.operators_sender = RecordingSender()
    app.worker.senders["telegram"] = app.operators_sender
    yield app
    await app.stop()


def conversations(db_path) -> int:
    with sqlite3.connect(db_path) as db:
        return db.execute("SELECT count(*) FROM conversations").fetchone()[0]


async def cookieless_post(mia, headers=None) -> httpx.Response:
    async with httpx.AsyncClient(base_url=mia.web_url, headers=headers or {}) as browser:
        return await browser.post("/api/messages", json={"text": "biaya paspor brp"})


async def test_new_sessions_per_address_are_limited_with_a_clear_reply(mia, db_path):
    assert [(await cookieless_post(mia)).status_code for _ in range(3)] == [200, 200, 200]
    refused = await cookieless_post(mia)
    assert refused.status_code == 429 and "mia_session" not in refused.cookies
    notice = refused.json()["notice"]
    assert notice.startswith("Terlalu banyak permintaan") and "Too many requests" in notice
    assert conversations(db_path) == 3  # nothing stored for the refused one
    async with httpx.AsyncClient(base_url=mia.web_url) as page:  # the page loads, without a cookie
        r = await page.get("/")
        assert r.status_code == 200 and "mia_session" not in r.cookies
        assert (await page.get("/api/messages")).json() == {"messages": []}
        assert (await page.post("/api/lang", json={"lang": "en"})).status_code == 429
    # Another citizen, forwarded by the trusted proxy, has a limit of its own.
    assert (await cookieless_post(mia, {"X-Forwarded-For": "198.51.100.7"})).status_code == 200


async def test_a_forged_forwarded_address_does_not_escape_the_limit(db_path):
    settings = Settings(_env_file=None, mia_db_path=db_path, mia_web_port=0, mia_web_new_sessions_per_minute=2,
                        mia_reload_enabled=False)  # no trusted proxy: the header is the client's word
    app = MiaApp(settings)
    await app.start()
    app.web.tarpit_seconds = 0.0
    try:
        codes = [(await cookieless_post(app, {"X-Forwarded-For": f"198.51.100.{n}"})).status_code for n in range(4)]
        assert codes == [200, 200, 429, 429]
    finally:
        await app.stop()


async def test_messages_per_address_are_limited_across_sessions(mia):
    async with httpx.AsyncClient(base_url=mia.web_url) as browser:
        codes = [(await browser.post("/api/messages", json={"text": "halo", "message_id": f"m{n}"})).status_code
                 for n in range(9)]
    assert codes == [200] * 8 + [429]
    assert (await cookieless_post(mia, {"X-Forwarded-For": "198.51.100.8"})).status_code == 200


async def test_one_turn_web_conversations_expire_and_others_stay(assistant, db_path):
    store = assistant.store
    for chat, texts, channel in (("once", ["halo"], "web"), ("twice", ["halo", "biaya paspor brp"], "web"),
                                 ("lang-only", [], "web"), ("tg", ["halo"], "telegram")):
        for n, text in enumerate(texts):
            await assistant.handle(Incoming(channel, chat, text, f"{chat}:{n}"))
        if not texts:
            async with store.unit() as unit:
                await unit.save_state(channel, chat, await unit.load_state(channel, chat))
        async with store.unit() as unit:
            await unit.add_web_message(chat, "user", "halo", [])
    assert await store.expire_single_turn_web(time.time() - 3600) == 0  # too recent
    assert await store.expire_single_turn_web(time.time() + 1) == 2
    with sqlite3.connect(db_path) as db:
        assert {r[0] for r in db.execute("SELECT chat_id FROM conversations")} == {"twice", "tg"}
        assert {r[0] for r in db.execute("SELECT DISTINCT chat_id FROM turns")} == {"twice", "tg"}
        assert {r[0] for r in db.execute("SELECT session_id FROM web_messages")} == {"twice", "tg"}
        assert {r[0] for r in db.execute("SELECT message_id FROM processed_messages")} == {
            "twice:0", "twice:1", "tg:0"}


async def test_past_the_size_limit_no_new_web_sessions_and_the_operators_are_told(mia, db_path):
    async with httpx.AsyncClient(base_url=mia.web_url) as citizen:
        assert (await citizen.post("/api/messages", json={"text": "halo"})).status_code == 200
        mia.web.guard.max_bytes = 1  # the database is past its limit
        mia.web.guard._checked = float("-inf")
        refused = await cookieless_post(mia, {"X-Forwarded-For": "198.51.100.9"})
        assert refused.status_code == 503 and refused.json()["notice"].startswith("Maaf, obrolan web")
        r = await citizen.post("/api/messages", json={"text": "biaya paspor brp"})  # a chat in progress goes on
        assert r.status_code == 200 and any("Rp350.000" in m["text"] for m in r.json()["messages"])
        assert (await cookieless_post(mia, {"X-Forwarded-For": "198.51.100.10"})).status_code == 503
    for _ in range(100):
        if mia.operators_sender.sent:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    notices = [p["text"] for chat, p in mia.operators_sender.sent if chat == OPERATORS]
    assert len(notices) == 1 and "MIA_STORE_MAX_MB" in notices[0]  # told once
