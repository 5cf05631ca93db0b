"""The SQLite store (aiosqlite, WAL): conversation state, processed messages, the turn log."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import aiosqlite

from bot.store.base import CallbackRequest
from bot.store.sqlite_schema import MIGRATIONS
from bot.store.sqlite_staff import StaffDeskTables
from bot.store.sqlite_work import WorkTables
from bot.store.sqlite_unit import (REQUEST_COLUMNS, SQLiteUnit, _claim,
                                   _recent_turns, _request)


class SQLiteStore(WorkTables, StaffDeskTables):
    """Store on one SQLite file (or ":memory:"), WAL mode, with a busy timeout.

    One connection serves the process; an asyncio lock keeps each unit of work (claim,
    load, save) a single transaction that no other coroutine interleaves with.
    """

    def __init__(self, path: str | Path, busy_timeout_ms: int = 5000, worker: str = "mia"):
        self.path = str(path)
        self.worker = worker  # leases of the outbox and of named jobs are held under this name
        self.busy_timeout_ms = busy_timeout_ms
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        """Open the database, creating the file and applying migrations as needed."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # Personal data: a new database is its owner's only (SQLite gives the -wal and -shm
            # files the database file's mode).
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                pass
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        await self._db.execute("PRAGMA journal_mode = WAL")
        await self._db.execute("PRAGMA synchronous = NORMAL")
        await self._db.execute("PRAGMA foreign_keys = ON")
        # Deleted rows are overwritten with zeros: what the retention purge removes is not left
        # readable in the file's free pages.
        await self._db.execute("PRAGMA secure_delete = ON")
        await self._migrate()

    async def close(self) -> None:
        """Close the connection."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def _migrate(self) -> None:
        """Apply pending migrations, one transaction each; safe when several processes start at once."""
        db = self._require()
        while True:
            await db.execute_fetchall("BEGIN IMMEDIATE")  # the version is read under the write lock
            try:
                (version,) = (await db.execute_fetchall("PRAGMA user_version"))[0]
                if version >= len(MIGRATIONS):
                    await db.execute_fetchall("COMMIT")
                    return
                for statement in filter(str.strip, MIGRATIONS[version].split(";")):
                    await db.execute_fetchall(statement)
                await db.execute_fetchall(f"PRAGMA user_version = {version + 1}")
                await db.execute_fetchall("COMMIT")
            except BaseException:
                await db.execute_fetchall("ROLLBACK")
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
            unit = SQLiteUnit(db, self.worker)
            try:
                yield unit
            except BaseException:
                await unit._abort()
                raise
            else:
                await unit._finish()

    @asynccontextmanager
    async def _query(self, sql: str, params=()) -> AsyncIterator[aiosqlite.Cursor]:
        """A read outside any unit. It waits for the unit in hand: the connection is shared, and a
        read between a unit's statements would see its uncommitted writes (an outbox row that a
        rollback then removes, sent all the same)."""
        async with self._lock:
            async with self._require().execute(sql, params) as cur:
                yield cur

    async def schema_version(self) -> int:
        """The number of migrations applied."""
        async with self._query("PRAGMA user_version") as cur:
            return (await cur.fetchone())[0]

    async def _tx(self, fn):
        """fn(sqlite3 connection) as one transaction in one hop; returns its result."""
        async with self.unit() as u:
            return await u._call(fn)

    async def web_transcript_bytes(self, session_id: str) -> int:
        """How much a web chat's transcript holds (characters of its texts and buttons)."""
        async with self._query(
                "SELECT coalesce(sum(length(text) + length(buttons)), 0) FROM web_messages WHERE session_id = ?",
                (session_id,)) as cur:
            return (await cur.fetchone())[0]

    async def web_messages(self, session_id: str, after: int = 0, limit: int = 500) -> list[dict]:
        """A web chat's transcript after message id `after`, oldest first."""
        async with self._query(
            "SELECT id, role, text, buttons, created_at FROM web_messages WHERE session_id = ? AND id > ? "
            "ORDER BY id LIMIT ?", (session_id, after, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [{"id": r[0], "role": r[1], "text": r[2], "buttons": json.loads(r[3]), "at": r[4]} for r in rows]

    # -- WhatsApp bookkeeping ---------------------------------------------------------------

    async def add_whatsapp_update(self, body: str) -> int | None:
        """Keep a raw webhook body, kept by this worker, until it is handled (it is acknowledged only after
        this commits). None, and nothing stored, for a body already kept (a replay: same bytes, same signature)."""
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()

        def insert(conn) -> int | None:
            cur = conn.execute("INSERT OR IGNORE INTO whatsapp_inbox (body, received_at, body_hash, worker) "
                               "VALUES (?, ?, ?, ?)", (body, time.time(), digest, self.worker))
            return cur.lastrowid if cur.rowcount else None

        return await self._tx(insert)

    async def pending_whatsapp_updates(self, received_before: float | None = None,
                                       mine: bool = False) -> list[tuple[int, str]]:
        """Stored webhook bodies not yet handled, oldest first; optionally only those received before a
        time (what a worker that died left behind) and/or (mine) kept by this worker."""
        mine_only = self.worker if mine else None
        async with self._query(
            "SELECT id, body FROM whatsapp_inbox WHERE processed_at IS NULL AND (? IS NULL OR received_at < ?) "
            "AND (? IS NULL OR worker = ?) ORDER BY id", (received_before, received_before, mine_only, mine_only)) as cur:
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def whatsapp_update_done(self, row_id: int, error: str | None) -> None:
        await self._tx(lambda conn: conn.execute("UPDATE whatsapp_inbox SET processed_at = ?, error = ? WHERE id = ?",
                                                 (time.time(), error, row_id)))

    async def touch_whatsapp_contact(self, chat_id: str, inbound_at: float) -> list[str]:
        """Record a citizen's message time (opens the 24-hour window); return the numbered options last shown."""
        def run(conn):
            conn.execute(
                "INSERT INTO whatsapp_contacts (chat_id, last_inbound_at) VALUES (?, ?) ON CONFLICT (chat_id) "
                "DO UPDATE SET last_inbound_at = max(last_inbound_at, excluded.last_inbound_at)", (chat_id, inbound_at))
            return conn.execute("SELECT options FROM whatsapp_contacts WHERE chat_id = ?", (chat_id,)).fetchone()

        row = await self._tx(run)
        return json.loads(row[0]) if row else []

    async def whatsapp_contact(self, chat_id: str) -> dict | None:
        async with self._query(
            "SELECT last_inbound_at, options FROM whatsapp_contacts WHERE chat_id = ?", (chat_id,)) as cur:
            row = await cur.fetchone()
        return {"last_inbound_at": row[0], "options": json.loads(row[1])} if row else None

    async def set_whatsapp_options(self, chat_id: str, options: list[str]) -> None:
        await self._tx(lambda conn: conn.execute("UPDATE whatsapp_contacts SET options = ? WHERE chat_id = ?",
                                                 (json.dumps(options, ensure_ascii=False), chat_id)))

    async def close_whatsapp_window(self, chat_id: str) -> None:
        """WhatsApp said the 24-hour window is closed: only templates until the citizen writes again."""
        await self._tx(lambda conn: conn.execute("UPDATE whatsapp_contacts SET last_inbound_at = 0 WHERE chat_id = ?",
                                                 (chat_id,)))

    async def record_whatsapp_status(self, message_id: str, status: str, chat_id: str, error_code: int | None) -> bool:
        """Record a delivery status once; False for a status already recorded (a replay)."""
        def run(conn) -> bool:
            if not _claim(conn, "whatsapp", f"status:{message_id}:{status}"):
                return False
            conn.execute("INSERT INTO whatsapp_statuses (message_id, status, chat_id, error_code, recorded_at) "
                         "VALUES (?, ?, ?, ?, ?)", (message_id, status, chat_id, error_code, time.time()))
            return True

        return await self._tx(run)

    async def unanswered_since(self, since: float, office: str | None = None) -> list[dict]:
        """Logged questions (not understood, menus, answers a citizen said did not help) since a time, oldest first."""
        return await self.review_items(since=since, office=office, status=None)

    async def review_items(self, since: float = 0.0, office: str | None = None, status: str | None = "open",
                           kinds: tuple[str, ...] | None = None) -> list[dict]:
        """The review log, oldest first: each row's masked text, kind, MIA's candidates, what MIA
        answered, what the citizen chose in a menu, and the operator's decision."""
        sql = ("SELECT id, channel, office, text, kind, candidates, created_at, answered, chosen, status, "
               "decided_intent FROM unanswered WHERE created_at >= ?")
        args: list = [since]
        if office:
            sql += " AND office = ?"
            args.append(office)
        if status:
            sql += " AND status = ?"
            args.append(status)
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args.extend(kinds)
        async with self._query(sql + " ORDER BY id", args) as cur:
            rows = await cur.fetchall()
        return [{"id": r[0], "channel": r[1], "office": r[2], "text": r[3], "kind": r[4],
                 "candidates": json.loads(r[5]), "at": r[6], "answered": r[7], "chosen": r[8], "status": r[9],
                 "decided_intent": r[10]} for r in rows]

    async def decide_review(self, ids: list[int], status: str, intent: str | None, by: str) -> int:
        """An operator's decision on review rows ("confirmed" with an intent, or "dropped"); open rows only."""
        def run(conn) -> int:
            marks = ",".join("?" * len(ids))
            return conn.execute(f"UPDATE unanswered SET status = ?, decided_intent = ?, decided_by = ?, decided_at = ? "
                                f"WHERE id IN ({marks}) AND status = 'open'",
                                (status, intent, by, time.time(), *ids)).rowcount
        return await self._tx(run) if ids else 0

    async def add_confirmed_example(self, text: str, intent: str | None, decided_by: str) -> None:
        """An operator's decision on a logged question: a labelled case for `mia intents test`."""
        await self._tx(lambda conn: conn.execute(
            "INSERT INTO confirmed_examples (text, intent, decided_by, created_at) VALUES (?, ?, ?, ?)",
            (text, intent, decided_by, time.time())))

    async def confirmed_examples(self) -> list[dict]:
        async with self._query("SELECT text, intent FROM confirmed_examples ORDER BY id") as cur:
            return [{"text": r[0], "intent": r[1]} for r in await cur.fetchall()]

    async def purge(self, older_than: float, dry_run: bool = False, vacuum: bool = False) -> dict[str, int]:
        """Retention: nothing personal older than `older_than` stays in any table. Requests closed
        before it, or made before it and never closed, keep only office, region, status and times;
        conversations (abandoned forms too), every log and every table that grows with traffic lose
        their older rows. Counts per table. Deleted rows are zeroed (secure_delete); the WAL is then
        checkpointed and truncated, and with `vacuum` the file is rebuilt, so no copy is left in
        free pages or old WAL frames either (databases from before secure_delete)."""
        counts: dict[str, int] = {}
        anonymize = ("(fields != '{}' OR chat_id != '' OR claimed_by IS NOT NULL OR done_by IS NOT NULL) AND "
                     "((status = 'done' AND done_at < :t) OR created_at < :t)")
        queries = {
            "requests_anonymized": (f"SELECT count(*) FROM callback_requests WHERE {anonymize}",
                                    "UPDATE callback_requests SET fields = '{}', chat_id = '', claimed_by = NULL, "
                                    f"done_by = NULL WHERE {anonymize}"),
            "conversations_deleted": ("SELECT count(*) FROM conversations WHERE updated_at < :t",
                                      "DELETE FROM conversations WHERE updated_at < :t"),
            "turns_deleted": ("SELECT count(*) FROM turns WHERE created_at < :t",
                              "DELETE FROM turns WHERE created_at < :t"),
            "web_messages_deleted": ("SELECT count(*) FROM web_messages WHERE created_at < :t",
                                     "DELETE FROM web_messages WHERE created_at < :t"),
            "unanswered_deleted": ("SELECT count(*) FROM unanswered WHERE created_at < :t",
                                   "DELETE FROM unanswered WHERE created_at < :t"),
            "processed_messages_deleted": ("SELECT count(*) FROM processed_messages WHERE created_at < :t",
                                           "DELETE FROM processed_messages WHERE created_at < :t"),
            "whatsapp_updates_deleted": ("SELECT count(*) FROM whatsapp_inbox WHERE received_at < :t "
                                         "AND processed_at IS NOT NULL", "DELETE FROM whatsapp_inbox WHERE "
                                         "received_at < :t AND processed_at IS NOT NULL"),
            "webhook_updates_deleted": ("SELECT count(*) FROM inbox WHERE received_at < :t "
                                        "AND processed_at IS NOT NULL", "DELETE FROM inbox WHERE "
                                        "received_at < :t AND processed_at IS NOT NULL"),
            "leases_deleted": ("SELECT count(*) FROM leases WHERE expires_at < :t",
                               "DELETE FROM leases WHERE expires_at < :t"),
            "whatsapp_contacts_deleted": ("SELECT count(*) FROM whatsapp_contacts WHERE last_inbound_at < :t",
                                          "DELETE FROM whatsapp_contacts WHERE last_inbound_at < :t"),
            "whatsapp_statuses_deleted": ("SELECT count(*) FROM whatsapp_statuses WHERE recorded_at < :t",
                                          "DELETE FROM whatsapp_statuses WHERE recorded_at < :t"),
            "staff_messages_deleted": ("SELECT count(*) FROM staff_messages WHERE created_at < :t",
                                       "DELETE FROM staff_messages WHERE created_at < :t"),
            # A row still pending after the retention period will never be of use.
            "outbox_deleted": ("SELECT count(*) FROM outbox WHERE created_at < :t",
                               "DELETE FROM outbox WHERE created_at < :t"),
            "digest_items_deleted": ("SELECT count(*) FROM digest_items WHERE created_at < :t",
                                     "DELETE FROM digest_items WHERE created_at < :t"),
            "confirmed_examples_deleted": ("SELECT count(*) FROM confirmed_examples WHERE created_at < :t",
                                           "DELETE FROM confirmed_examples WHERE created_at < :t"),
        }

        def run(conn):
            for name, (count_sql, change_sql) in queries.items():
                counts[name] = conn.execute(count_sql, {"t": older_than}).fetchone()[0]
                if not dry_run:
                    conn.execute(change_sql, {"t": older_than})

        await self._tx(run)
        if not dry_run and self.path != ":memory:":
            async with self._lock:
                db = self._require()
                if vacuum:
                    await db.execute_fetchall("VACUUM")
                # Old versions of the pages stay in the WAL until it is checkpointed and truncated
                # (busy if another process is reading at this moment: the next purge does it).
                await db.execute_fetchall("PRAGMA wal_checkpoint(TRUNCATE)")
        return counts

    async def expire_single_turn_web(self, older_than: float, batch: int = 2000) -> int:
        """Delete web conversations last touched before `older_than` that never got past one turn
        (a visit that only greeted, or a client dropping its cookie each time), with their turns,
        transcript and message ids. Returns how many conversations went."""
        def run(conn) -> int:
            chats = [r[0] for r in conn.execute(
                "SELECT chat_id FROM conversations c WHERE channel = 'web' AND updated_at < ? AND (SELECT count(*) "
                "FROM (SELECT 1 FROM turns t WHERE t.channel = 'web' AND t.chat_id = c.chat_id LIMIT 2)) <= 1 "
                "LIMIT ?", (older_than, batch))]
            for chat in chats:
                conn.execute("DELETE FROM turns WHERE channel = 'web' AND chat_id = ?", (chat,))
                conn.execute("DELETE FROM web_messages WHERE session_id = ?", (chat,))
                conn.execute("DELETE FROM processed_messages WHERE channel = 'web' AND message_id >= ? "
                             "AND message_id < ?", (chat + ":", chat + ";"))
                conn.execute("DELETE FROM conversations WHERE channel = 'web' AND chat_id = ?", (chat,))
            return len(chats)

        total = 0
        while n := await self._tx(run):
            total += n
            if n < batch:
                break
        return total

    # -- weekly digest ------------------------------------------------------------------------

    async def add_digest_item(self, example: str, count: int, candidates: list[str],
                              review_ids: list[int] = ()) -> int:
        return await self._tx(lambda conn: conn.execute(
            "INSERT INTO digest_items (example, count, candidates, created_at, review_ids) VALUES (?, ?, ?, ?, ?)",
            (example, count, json.dumps(candidates), time.time(), json.dumps(list(review_ids)))).lastrowid)

    async def digest_item(self, item_id: int) -> dict | None:
        async with self._query(
            "SELECT id, example, count, candidates, status, review_ids FROM digest_items WHERE id = ?",
                (item_id,)) as cur:
            row = await cur.fetchone()
        return {"id": row[0], "example": row[1], "count": row[2], "candidates": json.loads(row[3]),
                "status": row[4], "review_ids": json.loads(row[5])} if row else None

    async def decide_digest_item(self, item_id: int, status: str, by: str) -> bool:
        """Mark an item decided; False when it already was (a second press changes nothing)."""
        return await self._tx(lambda conn: conn.execute(
            "UPDATE digest_items SET status = ?, decided_by = ? WHERE id = ? AND status = 'open'",
            (status, by, item_id)).rowcount == 1)

    async def get_meta(self, key: str) -> str | None:
        async with self._query("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def meta_default(self, key: str, value: str) -> str:
        """The stored value of `key`, storing `value` first if there is none (the first writer wins
        when several processes start at once)."""
        def run(conn):
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, value))
            return conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0]

        return await self._tx(run)

    async def set_meta(self, key: str, value: str) -> None:
        await self._tx(lambda conn: conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value)))

    async def list_requests(self, office: str | None = None, status: str | None = None) -> list[CallbackRequest]:
        """Callback requests, oldest first, optionally of one office and/or status."""
        sql = f"SELECT {REQUEST_COLUMNS} FROM callback_requests WHERE 1 = 1"
        args: list = []
        if office:
            sql += " AND office = ?"
            args.append(office)
        if status:
            sql += " AND status = ?"
            args.append(status)
        async with self._query(sql + " ORDER BY id", args) as cur:
            return [_request(r) for r in await cur.fetchall()]

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first."""
        async with self._lock:
            return await _recent_turns(self._require(), channel, chat_id, limit)


__all__ = ["MIGRATIONS", "SQLiteStore", "SQLiteUnit"]
