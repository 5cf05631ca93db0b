"""Shared fixtures: the shipped content (loaded once) and assistants over real SQLite files."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from bot.core.assistant import Assistant
from bot.core.content import Content
from bot.core.messages import Incoming, Reply
from bot.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MIA_SHARED_DIR", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def content() -> Content:
    return Content.load(ROOT)


@pytest.fixture
def content_copy(tmp_path) -> Path:
    """A private copy of intents/, responses/ and data/ that a test may edit."""
    for name in ("intents", "responses", "data"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def db_path(tmp_path) -> Path:
    return tmp_path / "mia.db"


@pytest.fixture
async def store(db_path):
    """A real SQLite file, opened for the test and closed after it."""
    store = SQLiteStore(db_path)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def assistant(content, store):
    return Assistant(content, store)


class Chat:
    """A citizen typing into MIA: each say() is a new message in the same conversation."""

    def __init__(self, assistant: Assistant, chat_id: str = "citizen-1", channel: str = "web"):
        self.assistant = assistant
        self.chat_id = chat_id
        self.channel = channel
        self.n = 0

    async def say(self, text: str):
        self.n += 1
        msg = Incoming(self.channel, self.chat_id, text, f"{self.chat_id}-{self.n}")
        replies = await self.assistant.handle(msg)
        # What the citizen sees: the messages one after another, the buttons of the last one.
        return Reply("\n\n".join(r.text for r in replies), replies[-1].buttons if replies else ())


@pytest.fixture
def chat(assistant) -> Chat:
    return Chat(assistant)


def mia_command() -> list[str]:
    """How tests run the installed console script."""
    exe = Path(sys.executable).parent / "mia"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bot"]
