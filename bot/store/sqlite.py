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

from bot.store.base import CallbackRequest, ConversationState, OutboxItem

REQUEST_COLUMNS = ("ref, channel, chat_id, office, region, fields, status, created_at, claimed_by, claimed_at, "
                   "done_by, done_at")


RECENT_TURNS = ("SELECT text, intent, reply, created_at FROM turns WHERE channel = ? AND chat_id = ? "
                "ORDER BY id DESC LIMIT ?")


async def _recent_turns(db: aiosqlite.Connection, channel: str, chat_id: str, limit: int) -> list[dict]:
    async with db.execute(RECENT_TURNS, (channel, chat_id, limit)) as cur:
        rows = await cur.fetchall()
    return [dict(text=r[0], intent=r[1], reply=r[2], created_at=r[3]) for r in reversed(rows)]


# Outbox rows of the given channels (a JSON list; null: all) and not of the skipped chats
# (a JSON list of "channel chat_id"; channel names have no space).
_OUTBOX_FILTER = ("(:channels IS NULL OR channel IN (SELECT value FROM json_each(:channels))) "
                  "AND channel || ' ' || chat_id NOT IN (SELECT value FROM json_each(:skip))")


def _outbox_filter_args(channels: list[str] | None, skip) -> dict:
    return {"channels": None if channels is None else json.dumps(list(channels)),
            "skip": json.dumps([f"{c} {i}" for c, i in skip])}


def _request(row) -> CallbackRequest:
    return CallbackRequest(ref=row[0], channel=row[1], chat_id=row[2], office=row[3], region=row[4],
                           fields=json.loads(row[5]), status=row[6], created_at=row[7], claimed_by=row[8],
                           claimed_at=row[9], done_by=row[10], done_at=row[11])

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
    """
    CREATE TABLE callback_requests (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        ref TEXT UNIQUE,
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        office TEXT NOT NULL,
        region TEXT NOT NULL,
        fields TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        created_at REAL NOT NULL,
        claimed_by TEXT,
        claimed_at REAL,
        done_by TEXT,
        done_at REAL
    );
    CREATE INDEX callback_requests_office ON callback_requests (office, status);
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL NOT NULL,
        last_error TEXT,
        created_at REAL NOT NULL,
        sent_at REAL,
        sent_message_id TEXT
    );
    CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id);
    CREATE TABLE staff_messages (
        channel TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        target TEXT NOT NULL,
        PRIMARY KEY (channel, chat_id, message_id)
    );
    """,
    """
    CREATE TABLE web_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        role TEXT NOT NULL,
        text TEXT NOT NULL,
        buttons TEXT NOT NULL DEFAULT '[]',
        created_at REAL NOT NULL
    );
    CREATE INDEX web_messages_session ON web_messages (session_id, id);
    """,
    """
    CREATE TABLE whatsapp_inbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        body TEXT NOT NULL,
        received_at REAL NOT NULL,
        processed_at REAL,
        error TEXT
    );
    CREATE INDEX whatsapp_inbox_pending ON whatsapp_inbox (processed_at, id);
    CREATE TABLE whatsapp_contacts (
        chat_id TEXT PRIMARY KEY,
        last_inbound_at REAL NOT NULL,
        options TEXT NOT NULL DEFAULT '[]'
    );
    CREATE TABLE whatsapp_statuses (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL,
        status TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        error_code INTEGER,
        recorded_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE unanswered (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL,
        office TEXT,
        text TEXT NOT NULL,
        kind TEXT NOT NULL,
        candidates TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX unanswered_time ON unanswered (created_at);
    CREATE TABLE confirmed_examples (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        text TEXT NOT NULL,
        intent TEXT,
        decided_by TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE digest_items (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        example TEXT NOT NULL,
        count INTEGER NOT NULL,
        candidates TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'open',
        decided_by TEXT,
        created_at REAL NOT NULL
    );
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # The outbox worker asks, per chat, whether an older row holds a row back.
    """
    CREATE INDEX outbox_chat ON outbox (channel, chat_id, status, id);
    """,
    # Retention: staff notifications' targets ("whatsapp:62812...") leave with the rest; rows from
    # before this migration count from the migration.
    """
    ALTER TABLE staff_messages ADD COLUMN created_at REAL NOT NULL DEFAULT 0;
    UPDATE staff_messages SET created_at = CAST(strftime('%s', 'now') AS REAL);
    """,
    # The review log: what MIA answered, what the citizen chose in a menu, what an operator decided.
    """
    ALTER TABLE unanswered ADD COLUMN ref TEXT;
    ALTER TABLE unanswered ADD COLUMN answered TEXT;
    ALTER TABLE unanswered ADD COLUMN chosen TEXT;
    ALTER TABLE unanswered ADD COLUMN status TEXT NOT NULL DEFAULT 'open';
    ALTER TABLE unanswered ADD COLUMN decided_intent TEXT;
    ALTER TABLE unanswered ADD COLUMN decided_by TEXT;
    ALTER TABLE unanswered ADD COLUMN decided_at REAL;
    CREATE INDEX unanswered_ref ON unanswered (ref);
    CREATE INDEX unanswered_status ON unanswered (status, created_at);
    """,
    # A digest question remembers the review rows it stands for, so deciding it decides them.
    """
    ALTER TABLE digest_items ADD COLUMN review_ids TEXT NOT NULL DEFAULT '[]';
    """,
    # The relay budget counts what each staff chat was sent in the last minute.
    """
    CREATE INDEX outbox_recent ON outbox (channel, chat_id, created_at);
    """,
    # A replayed webhook body (same bytes, same signature) is stored once.
    """
    ALTER TABLE whatsapp_inbox ADD COLUMN body_hash TEXT;
    CREATE UNIQUE INDEX whatsapp_inbox_hash ON whatsapp_inbox (body_hash);
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
            unit = SQLiteUnit(db)
            try:
                yield unit
            except BaseException:
                await unit._abort()
                raise
            else:
                await unit._finish()

    async def schema_version(self) -> int:
        """The number of migrations applied."""
        async with self._require().execute("PRAGMA user_version") as cur:
            return (await cur.fetchone())[0]

    async def due_outbox(self, now: float, limit: int = 50, channels: list[str] | None = None,
                         skip: list[tuple[str, str]] = ()) -> list[OutboxItem]:
        """Pending rows that are due and that no older row of their chat holds back (a chat's
        messages leave in order), oldest first: only what can be sent now is read. Optionally
        only of `channels`, and not of the chats in `skip` ((channel, chat id) pairs)."""
        async with self._require().execute(
            "SELECT id, channel, chat_id, payload, attempts, next_attempt_at FROM outbox o WHERE status = 'pending' "
            f"AND next_attempt_at <= :now AND {_OUTBOX_FILTER} AND NOT EXISTS (SELECT 1 FROM outbox e "
            "WHERE e.status = 'pending' AND e.channel = o.channel AND e.chat_id = o.chat_id AND e.id < o.id "
            "AND e.next_attempt_at > :now) ORDER BY id LIMIT :limit",
            {"now": now, "limit": limit, **_outbox_filter_args(channels, skip)},
        ) as cur:
            rows = await cur.fetchall()
        return [OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

    async def next_outbox_due(self, now: float, channels: list[str] | None = None,
                              skip: list[tuple[str, str]] = ()) -> float | None:
        """When the next chat's oldest pending row falls due after `now` (None: no such row):
        the outbox worker sleeps until then instead of reading rows that are not due."""
        async with self._require().execute(
            "SELECT min(next_attempt_at) FROM outbox o WHERE status = 'pending' AND next_attempt_at > :now "
            f"AND {_OUTBOX_FILTER} AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.status = 'pending' "
            "AND e.channel = o.channel AND e.chat_id = o.chat_id AND e.id < o.id)",
            {"now": now, **_outbox_filter_args(channels, skip)},
        ) as cur:
            return (await cur.fetchone())[0]

    async def _tx(self, fn):
        """fn(sqlite3 connection) as one transaction in one hop; returns its result."""
        async with self.unit() as u:
            return await u._call(fn)

    async def outbox_sent(self, item: OutboxItem, message_id: str | None) -> None:
        """Mark a row sent; remember staff notifications so replies and buttons find their target."""
        bind = item.payload.get("bind")

        def run(conn):
            conn.execute("UPDATE outbox SET status = 'sent', sent_at = ?, sent_message_id = ?, "
                         "attempts = attempts + 1 WHERE id = ?", (time.time(), message_id, item.id))
            if bind and message_id is not None:
                conn.execute("INSERT OR REPLACE INTO staff_messages (channel, chat_id, message_id, kind, target, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                             (item.channel, item.chat_id, str(message_id), bind["kind"], bind["target"], time.time()))

        await self._tx(run)

    async def release_outbox(self, channel: str, ids: list[int] | None = None) -> int:
        """End leases now: of the given rows, or (ids None, at start-up) of every pending row of
        the channel, since no sender of this process holds one yet. Returns the rows released."""
        now = time.time()
        if ids is None:
            return await self._tx(lambda conn: conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND channel = ? "
                "AND next_attempt_at > ? AND attempts = 0", (now, channel, now)).rowcount)
        marks = ",".join("?" * len(ids))
        return await self._tx(lambda conn: conn.execute(
            f"UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND id IN ({marks})",
            (now, *ids)).rowcount)

    async def outbox_failed(self, item: OutboxItem, error: str, retry_at: float | None) -> None:
        """Record a failed attempt: retry at `retry_at`, or give up (status 'failed') when None."""
        if retry_at is None:
            await self._tx(lambda conn: conn.execute(
                "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error[:500], item.id)))
        else:
            await self._tx(lambda conn: conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?",
                (error[:500], retry_at, item.id)))

    async def web_transcript_bytes(self, session_id: str) -> int:
        """How much a web chat's transcript holds (characters of its texts and buttons)."""
        async with self._require().execute(
                "SELECT coalesce(sum(length(text) + length(buttons)), 0) FROM web_messages WHERE session_id = ?",
                (session_id,)) as cur:
            return (await cur.fetchone())[0]

    async def web_messages(self, session_id: str, after: int = 0, limit: int = 500) -> list[dict]:
        """A web chat's transcript after message id `after`, oldest first."""
        async with self._require().execute(
            "SELECT id, role, text, buttons, created_at FROM web_messages WHERE session_id = ? AND id > ? "
            "ORDER BY id LIMIT ?", (session_id, after, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [{"id": r[0], "role": r[1], "text": r[2], "buttons": json.loads(r[3]), "at": r[4]} for r in rows]

    # -- WhatsApp bookkeeping ---------------------------------------------------------------

    async def pending_whatsapp_updates(self) -> list[tuple[int, str]]:
        """Stored webhook bodies not yet handled, oldest first."""
        async with self._require().execute(
            "SELECT id, body FROM whatsapp_inbox WHERE processed_at IS NULL ORDER BY id") as cur:
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
        async with self._require().execute(
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
        async with self._require().execute(sql + " ORDER BY id", args) as cur:
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
        async with self._require().execute("SELECT text, intent FROM confirmed_examples ORDER BY id") as cur:
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
        async with self._require().execute(
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
        async with self._require().execute("SELECT value FROM meta WHERE key = ?", (key,)) as cur:
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
        async with self._require().execute(sql + " ORDER BY id", args) as cur:
            return [_request(r) for r in await cur.fetchall()]

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first."""
        return await _recent_turns(self._require(), channel, chat_id, limit)


def _in_thread(db: aiosqlite.Connection, fn):
    """Run fn(sqlite3 connection) on aiosqlite's own thread: several statements, one hop.

    aiosqlite's public methods cost one hop to its thread per statement (tens to hundreds of
    microseconds each under load); `_execute` is the primitive they are all built on.
    """
    return db._execute(lambda: fn(db._conn))


class SQLiteUnit:
    """Operations inside one transaction, batched so a message costs two hops to the database.

    The transaction begins with the first statement (BEGIN IMMEDIATE, sent in the same hop).
    Writes whose result nobody reads wait in `_pending` and go with the next read or with the
    COMMIT, in order, so the unit still sees its own writes and commits all or nothing.
    """

    def __init__(self, db: aiosqlite.Connection):
        self._db = db
        self._pending: list[tuple[str, tuple]] = []
        self._begun = False

    async def _call(self, fn):
        """Begin if needed, flush deferred writes, then fn(connection) - one hop."""
        pending, self._pending = self._pending, []
        begin = not self._begun
        self._begun = True

        def run(conn):
            if begin:
                conn.execute("BEGIN IMMEDIATE")
            for sql, params in pending:
                conn.execute(sql, params)
            return fn(conn)

        return await _in_thread(self._db, run)

    def _defer(self, sql: str, params: tuple) -> None:
        self._pending.append((sql, params))

    async def _finish(self) -> None:
        """Send the deferred writes and COMMIT (one hop); roll back if any of them fails."""
        if not self._begun and not self._pending:
            return  # nothing was read or written: no transaction to open

        def commit(conn):
            try:
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        try:
            await self._call(commit)
        except BaseException:
            if self._db.in_transaction:
                await self._db.execute_fetchall("ROLLBACK")
            raise

    async def _abort(self) -> None:
        self._pending.clear()
        if self._begun and self._db.in_transaction:
            await self._db.execute_fetchall("ROLLBACK")

    # -- callback requests ---------------------------------------------------------------

    async def create_request(self, channel: str, chat_id: str, office: str, region: str, fields: dict) -> CallbackRequest:
        """Save a confirmed request and give it its reference, e.g. RKT-2026-000123."""
        now = time.time()

        def insert(conn):
            cur = conn.execute(
                "INSERT INTO callback_requests (channel, chat_id, office, region, fields, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (channel, chat_id, office, region, json.dumps(fields, ensure_ascii=False), now))
            ref = f"RKT-{time.gmtime(now).tm_year}-{cur.lastrowid:06d}"
            conn.execute("UPDATE callback_requests SET ref = ? WHERE id = ?", (ref, cur.lastrowid))
            return conn.execute(f"SELECT {REQUEST_COLUMNS} FROM callback_requests WHERE ref = ?", (ref,)).fetchone()

        return _request(await self._call(insert))

    async def get_request(self, ref: str) -> CallbackRequest | None:
        """A request by its reference (case-insensitive), or None."""
        row = await self._call(lambda conn: conn.execute(
            f"SELECT {REQUEST_COLUMNS} FROM callback_requests WHERE ref = ?", (ref.strip().upper(),)).fetchone())
        return _request(row) if row else None

    async def latest_request(self, channel: str, chat_id: str) -> CallbackRequest | None:
        """The newest request made from this chat, or None."""
        row = await self._call(lambda conn: conn.execute(
            f"SELECT {REQUEST_COLUMNS} FROM callback_requests WHERE channel = ? AND chat_id = ? ORDER BY id DESC "
            "LIMIT 1", (channel, chat_id)).fetchone())
        return _request(row) if row else None

    async def set_request_status(self, ref: str, status: str, by: str) -> None:
        """Record a claim ("claimed") or a close ("done"), with who and when."""
        column = {"claimed": "claimed", "done": "done"}[status]
        self._defer(f"UPDATE callback_requests SET status = ?, {column}_by = ?, {column}_at = ? WHERE ref = ?",
                    (status, by, time.time(), ref))

    # -- outbox --------------------------------------------------------------------------

    async def recent_outbox(self, channel: str, chat_id: str, since: float) -> int:
        """How many messages were queued for this chat since `since` (sent or not)."""
        row = await self._call(lambda conn: conn.execute(
            "SELECT count(*) FROM outbox WHERE channel = ? AND chat_id = ? AND created_at >= ?",
            (channel, chat_id, since)).fetchone())
        return row[0]

    async def enqueue(self, channel: str, chat_id: str, payload: dict) -> int:
        """Queue a message for the outbox worker; it leaves only if this transaction commits."""
        now = time.time()
        return await self._call(lambda conn: conn.execute(
            "INSERT INTO outbox (channel, chat_id, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?)",
            (channel, chat_id, json.dumps(payload, ensure_ascii=False), now, now)).lastrowid)

    async def enqueue_many(self, channel: str, chat_id: str, payloads: list[dict], lease_seconds: float = 0.0
                           ) -> list[int]:
        """Queue several messages in one hop. With a lease, the caller sends them itself right
        after the commit and the worker leaves them alone until the lease ends (a crash before
        the send is covered: the worker sends them when the lease runs out, or at restart)."""
        now = time.time()

        def insert(conn):
            return [conn.execute(
                "INSERT INTO outbox (channel, chat_id, payload, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?)",
                (channel, chat_id, json.dumps(p, ensure_ascii=False), now + lease_seconds, now)).lastrowid
                for p in payloads]

        return await self._call(insert)

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first."""
        rows = await self._call(lambda conn: conn.execute(RECENT_TURNS, (channel, chat_id, limit)).fetchall())
        return [dict(text=r[0], intent=r[1], reply=r[2], created_at=r[3]) for r in reversed(rows)]

    async def staff_message_of(self, kind: str, target: str) -> tuple[str, str, str] | None:
        """(channel, chat id, message id) of the staff notification about a target, or None."""
        row = await self._call(lambda conn: conn.execute(
            "SELECT channel, chat_id, message_id FROM staff_messages WHERE kind = ? AND target = ? LIMIT 1",
            (kind, target)).fetchone())
        return (row[0], row[1], row[2]) if row else None

    async def add_web_message(self, session_id: str, role: str, text: str, buttons: list[dict]) -> int:
        """Append a message to a web chat's transcript (what the page shows)."""
        return await self._call(lambda conn: conn.execute(
            "INSERT INTO web_messages (session_id, role, text, buttons, created_at) VALUES (?, ?, ?, ?, ?)",
            (session_id, role, text, json.dumps(buttons, ensure_ascii=False), time.time())).lastrowid)

    async def store_whatsapp_update(self, body: str) -> int | None:
        """Keep a raw webhook body until it is handled (it is acknowledged only after this commits).
        None, and nothing stored, for a body already kept (a replay: same bytes, same signature)."""
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()

        def insert(conn) -> int | None:
            cur = conn.execute("INSERT OR IGNORE INTO whatsapp_inbox (body, received_at, body_hash) VALUES (?, ?, ?)",
                               (body, time.time(), digest))
            return cur.lastrowid if cur.rowcount else None

        return await self._call(insert)

    async def log_unanswered(self, channel: str, office: str | None, text: str, kind: str,
                             candidates: list[tuple[str, float]], ref: str | None = None,
                             answered: str | None = None) -> None:
        """A message for the operators' review (text already masked): MIA did not understand it
        ("fallback"), offered a menu ("menu"), or answered it and heard "not helpful" ("not_helpful").
        `ref` lets a later menu choice label the row."""
        self._defer(
            "INSERT INTO unanswered (channel, office, text, kind, candidates, created_at, ref, answered) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (channel, office, text, kind, json.dumps(candidates), time.time(), ref, answered))

    async def label_unanswered(self, ref: str, chosen: str) -> None:
        """The citizen chose `chosen` from the menu MIA showed for row `ref`: the message is labelled."""
        self._defer("UPDATE unanswered SET chosen = ?, kind = CASE kind WHEN 'menu' THEN 'menu_choice' ELSE kind END "
                    "WHERE ref = ? AND chosen IS NULL", (chosen, ref))

    async def find_staff_message(self, channel: str, chat_id: str, message_id: str) -> tuple[str, str] | None:
        """(kind, target) of a notification MIA sent to a staff chat, or None."""
        row = await self._call(lambda conn: conn.execute(
            "SELECT kind, target FROM staff_messages WHERE channel = ? AND chat_id = ? AND message_id = ?",
            (channel, chat_id, message_id)).fetchone())
        return (row[0], row[1]) if row else None

    async def claim_message(self, channel: str, message_id: str) -> bool:
        """Record a message id; False when it was already handled (a re-delivery)."""
        return await self._call(lambda conn: _claim(conn, channel, message_id))

    async def claim_and_load(self, channel: str, message_id: str, chat_id: str) -> ConversationState | None:
        """claim_message and load_state in one hop; None for a re-delivered message."""
        def run(conn):
            return _load(conn, channel, chat_id) if _claim(conn, channel, message_id) else None

        return await self._call(run)

    async def load_state(self, channel: str, chat_id: str) -> ConversationState:
        """The conversation's state, or a fresh one."""
        return await self._call(lambda conn: _load(conn, channel, chat_id))

    async def save_state(self, channel: str, chat_id: str, state: ConversationState) -> None:
        """Write the conversation's state."""
        self._defer(
            "INSERT INTO conversations (channel, chat_id, lang, pending, data, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, chat_id) DO UPDATE SET lang = excluded.lang, pending = excluded.pending, "
            "data = excluded.data, updated_at = excluded.updated_at",
            (channel, chat_id, state.lang, state.pending, json.dumps(state.data, ensure_ascii=False), time.time()))

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
        self._defer(
            "INSERT INTO turns (channel, chat_id, text, intent, confidence, region, office, reply, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (channel, chat_id, text, intent, confidence, region, office, reply, time.time()))


def _claim(conn, channel: str, message_id: str) -> bool:
    return conn.execute("INSERT INTO processed_messages (channel, message_id, created_at) VALUES (?, ?, ?) "
                        "ON CONFLICT DO NOTHING RETURNING 1", (channel, message_id, time.time())).fetchone() is not None


def _load(conn, channel: str, chat_id: str) -> ConversationState:
    row = conn.execute("SELECT lang, pending, data FROM conversations WHERE channel = ? AND chat_id = ?",
                       (channel, chat_id)).fetchone()
    if row is None:
        return ConversationState()
    return ConversationState(lang=row[0], pending=row[1], data=json.loads(row[2]))
