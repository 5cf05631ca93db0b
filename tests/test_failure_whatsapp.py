"""WhatsApp: a failure while answering a stored message (a dropped database connection, a full
pool, a deadlock) is tried again, the bodies after it waiting; after the last attempt the failure is
recorded and the citizen is told. A malformed item fails the same way every time: recorded at once."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

import pytest

from bot.channels import whatsapp
from bot.channels.whatsapp import WhatsAppChannel
from tests.fakes.recording import RecordingSender
from tests.test_failure_telegram import FlakyAssistant

CITIZEN = "6281234567890"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(whatsapp, "RETRY_DELAYS", (0.01, 0.01, 0.01))


def body(wamid: str, text) -> str:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {
        "messages": [{"from": CITIZEN, "id": wamid, "timestamp": str(int(time.time())), "type": "text",
                      "text": text}]}}]}]})


async def handled(store, db_path, failures: int, *bodies: str) -> tuple[WhatsAppChannel, list]:
    """The bodies stored, then one pass; (the channel, the stored rows' errors in order)."""
    channel = WhatsAppChannel(FlakyAssistant(store, failures), RecordingSender(), "v", "secret")
    for raw in bodies:
        async with store.unit() as u:
            await u.store_whatsapp_update(raw)
    await channel.process_pending()
    assert await store.pending_whatsapp_updates() == []
    errors = [r[0] for r in sqlite3.connect(db_path).execute("SELECT error FROM whatsapp_inbox ORDER BY id")]
    return channel, errors


async def test_a_message_that_fails_once_is_answered_on_the_next_attempt(store, db_path):
    channel, errors = await handled(store, db_path, 1, body("wamid.1", {"body": "syarat paspor"}),
                                    body("wamid.2", {"body": "biaya paspor"}))
    # Tried again before the citizen's next message, which waited behind it.
    assert channel.assistant.seen == ["syarat paspor", "syarat paspor", "biaya paspor"]
    assert errors == [None, None]
    assert channel.sender.sent == []  # nothing to excuse


async def test_a_message_that_keeps_failing_is_recorded_and_the_citizen_told(store, db_path):
    channel, [error] = await handled(store, db_path, 99, body("wamid.1", {"body": "syarat paspor"}))
    assert len(channel.assistant.seen) == len(whatsapp.RETRY_DELAYS) + 1
    assert "ConnectionError" in error  # what operators see
    [(to, said)] = channel.sender.sent
    assert to == CITIZEN and said["text"].startswith("Maaf, pesan Anda belum dapat kami proses") and \
        "Please send it again" in said["text"]


async def test_a_malformed_message_is_recorded_without_waiting_for_retries(store, db_path, monkeypatch):
    monkeypatch.setattr(whatsapp, "RETRY_DELAYS", (60.0,))
    channel, [error] = await asyncio.wait_for(handled(store, db_path, 0, body("wamid.1", "not an object")), 5)
    assert "AttributeError" in error and channel.sender.sent == []
