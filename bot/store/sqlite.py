"""The SQLite store (aiosqlite, WAL): conversation state, processed messages, the turn log."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import aiosqlite

from bot.store.base import ConversationState

# Each migration runs once, in order; the applied count is kept in PRAGMA user_version.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE processed_messages (
        channel TEXT NOT NULL,
        message_id TEXT NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (channel, message_id)
    );
    CREATE TABLE conversations (
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        lang TEXT NOT NULL DEFAULT 'id',
        pending TEXT,
        data TEXT NOT NULL DEFAULT '{}',
        updated_at REAL NOT NULL,
        PRIMARY KEY (channel, chat_id)
    );
    CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        text TEXT NOT NULL,
        intent TEXT,
        confidence REAL NOT NULL,
        region TEXT,
        office TEXT,
        reply TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX turns_chat ON turns (channel, chat_id, id);
    """,
)


class SQLiteStore:
    """Store on one SQLite file (or ":memory:"), WAL mode, with a busy timeout.

    One connection serves the process; an asyncio lock keeps each unit of work (claim,
    load, save) a single transaction that no other coroutine interleaves with.
    """

    def __init__(self, path: str | Path, busy_timeout_ms: int = 5000):
        self.path = str(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the database, creating the file and applying migrations as needed."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        await self._db.execute("PRAGMA journal_mode = WAL")
        await self._db.execute("PRAGMA synchronous = NORMAL")
        await self._db.execute("PRAGMA foreign_keys = ON")
        await self._migrate()

    async def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _migrate(self) -> None:
        db = self._require()
        async with db.execute("PRAGMA user_version") as cur:
            (version,) = await cur.fetchone()
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, script.split(";")):
                    await db.execute(statement)
                await db.execute(f"PRAGMA user_version = {number}")
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    def _require(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    @asynccontextmanager
    async def unit(self) -> AsyncIterator["SQLiteUnit"]:
        """One transaction: everything done through the unit commits together or not at all."""
        db = self._require()
        async with self._lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield SQLiteUnit(db)
            except BaseException:
                await db.execute("ROLLBACK")
                raise
            else:
                await db.execute("COMMIT")

    async def schema_version(self) -> int:
        """The number of migrations applied."""
        async with self._require().execute("PRAGMA user_version") as cur:
            return (await cur.fetchone())[0]

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first."""
        async with self._require().execute(
            "SELECT text, intent, reply, created_at FROM turns WHERE channel = ? AND chat_id = ? "
            "ORDER BY id DESC LIMIT ?",
            (channel, chat_id, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [dict(text=r[0], intent=r[1], reply=r[2], created_at=r[3]) for r in reversed(rows)]


class SQLiteUnit:
    """Operations inside one open transaction."""

    def __init__(self, db: aiosqlite.Connection):
        self.db = db

    async def claim_message(self, channel: str, message_id: str) -> bool:
        """Record a message id; False when it was already handled (a re-delivery)."""
        cur = await self.db.execute(
            "INSERT OR IGNORE INTO processed_messages (channel, message_id, created_at) VALUES (?, ?, ?)",
            (channel, message_id, time.time()),
        )
        return cur.rowcount == 1

    async def load_state(self, channel: str, chat_id: str) -> ConversationState:
        """The conversation's state, or a fresh one."""
        async with self.db.execute(
            "SELECT lang, pending, data FROM conversations WHERE channel = ? AND chat_id = ?", (channel, chat_id)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return ConversationState()
        return ConversationState(lang=row[0], pending=row[1], data=json.loads(row[2]))

    async def save_state(self, channel: str, chat_id: str, state: ConversationState) -> None:
        """Write the conversation's state."""
        await self.db.execute(
            "INSERT INTO conversations (channel, chat_id, lang, pending, data, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, chat_id) DO UPDATE SET lang = excluded.lang, pending = excluded.pending, "
            "data = excluded.data, updated_at = excluded.updated_at",
            (channel, chat_id, state.lang, state.pending, json.dumps(state.data, ensure_ascii=False), time.time()),
        )

    async def log_turn(
        self,
        channel: str,
        chat_id: str,
        text: str,
        intent: str | None,
        confidence: float,
        region: str | None,
        office: str | None,
        reply: str,
    ) -> None:
        """Append one turn to the conversation log."""
        await self.db.execute(
            "INSERT INTO turns (channel, chat_id, text, intent, confidence, region, office, reply, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (channel, chat_id, text, intent, confidence, region, office, reply, time.time()),
        )
