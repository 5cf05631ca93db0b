"""Composition root: builds the content, store and assistant, and starts what is configured."""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

from bot.assistant import Assistant
from bot.config import Settings
from bot.content import Content
from bot.store.sqlite import SQLiteStore

log = logging.getLogger(__name__)


@asynccontextmanager
async def open_assistant(settings: Settings, db_path: str | Path | None = None) -> AsyncIterator[Assistant]:
    """An assistant over the settings' content and SQLite file (or `db_path`, e.g. ":memory:")."""
    content = Content.load(settings.mia_content_dir)
    log.info("content loaded in %.0f ms", content.load_seconds * 1000)
    store = SQLiteStore(db_path if db_path is not None else settings.mia_db_path)
    await store.open()
    try:
        yield Assistant(content, store)
    finally:
        await store.close()
