"""Telegram: a failure while answering an update (a dropped database connection, a full pool, a
deadlock) is tried again, in order with the chat's later updates; after the last attempt the failure
is recorded and the citizen is told. PTB hands a handler's exception to its error handler and
returns normally, so nothing of this happens unless the channel asks for it."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from types import SimpleNamespace

import httpx
import pytest

from bot.channels import telegram
from bot.channels.telegram import CHANNEL, TelegramChannel
from bot.store.sqlite import SQLiteStore
from tests.fakes.botapi import BOT, BotApiServer

CITIZEN = 4242


class FlakyAssistant:
    """The assistant as the channel sees it: the first `failures` messages meet a transient failure."""

    def __init__(self, store, failures: int):
        self.store = store
        self.failures = failures
        self.seen: list[str] = []

    async def handle_outcome(self, incoming, record=None):
        self.seen.append(incoming.text)
        if len(self.seen) <= self.failures:
            raise ConnectionError("connection was closed in the middle of operation")
        return None


@pytest.fixture
def botapi():
    server = BotApiServer().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(telegram, "RETRY_DELAYS", (0.01, 0.01, 0.01))


async def started(botapi, store, failures: int, webhook: bool) -> TelegramChannel:
    channel = TelegramChannel("123:ABC", f"{botapi.url}/bot", FlakyAssistant(store, failures),
                              SimpleNamespace(office_of_chat=lambda channel, chat: None), poll_timeout=1,
                              webhook_url="http://127.0.0.1:9/telegram" if webhook else None, webhook_secret="s")
    await channel.start()
    return channel


def update(update_id: int, text: str = "syarat paspor") -> dict:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": int(time.time()), "text": text,
        "chat": {"id": CITIZEN, "type": "private", "first_name": "Sari"},
        "from": {"id": CITIZEN, "is_bot": False, "first_name": "Sari"}}}


async def bot_texts(botapi) -> list[str]:
    async with httpx.AsyncClient(base_url=botapi.url) as http:
        messages = (await http.get("/_test/messages", params={"chat_id": CITIZEN})).json()
    return [m["text"] for m in messages if m.get("from", {}).get("id") == BOT["id"]]


async def test_a_kept_update_that_fails_once_is_answered_on_the_next_attempt(botapi, db_path):
    store = SQLiteStore(db_path)
    await store.open()
    channel = await started(botapi, store, failures=1, webhook=True)
    try:
        await store.inbox_add(CHANNEL, "1001", str(CITIZEN), json.dumps(update(1001, "syarat paspor")))
        await store.inbox_add(CHANNEL, "1002", str(CITIZEN), json.dumps(update(1002, "biaya paspor")))
        await channel._drain(str(CITIZEN))
        assert await store.inbox_pending(CHANNEL) == []
    finally:
        await channel.stop()
        await store.close()
    # Tried again before the chat's next message, which waited behind it.
    assert channel.assistant.seen == ["syarat paspor", "syarat paspor", "biaya paspor"]
    rows = sqlite3.connect(db_path).execute("SELECT key, error FROM inbox ORDER BY id").fetchall()
    assert rows == [("1001", None), ("1002", None)]
    assert await bot_texts(botapi) == []  # nothing to excuse


async def test_a_kept_update_that_keeps_failing_is_recorded_and_the_citizen_told(botapi, db_path):
    store = SQLiteStore(db_path)
    await store.open()
    channel = await started(botapi, store, failures=99, webhook=True)
    try:
        await store.inbox_add(CHANNEL, "1001", str(CITIZEN), json.dumps(update(1001)))
        await channel._drain(str(CITIZEN))
    finally:
        await channel.stop()
        await store.close()
    assert len(channel.assistant.seen) == len(telegram.RETRY_DELAYS) + 1
    [(error,)] = sqlite3.connect(db_path).execute("SELECT error FROM inbox WHERE processed_at IS NOT NULL")
    assert "ConnectionError" in error  # what operators see
    [told] = await bot_texts(botapi)
    assert told.startswith("Maaf, pesan Anda belum dapat kami proses") and "Please send it again" in told


async def test_polling_tries_a_failed_update_again_before_confirming_it(botapi, db_path):
    store = SQLiteStore(db_path)
    await store.open()
    async with httpx.AsyncClient(base_url=botapi.url) as http:  # two messages, fetched in one batch
        for text in ("syarat paspor", "biaya paspor"):
            await http.post("/_test/send", json={"chat_id": CITIZEN, "text": text})
    channel = await started(botapi, store, failures=1, webhook=False)
    try:
        for _ in range(100):
            if len(channel.assistant.seen) >= 3:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
    finally:
        await channel.stop()
        await store.close()
    assert channel.assistant.seen == ["syarat paspor", "syarat paspor", "biaya paspor"]
