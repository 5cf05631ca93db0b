"""One SQLite transaction (a unit of work), and the row helpers the store shares with it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time

import aiosqlite

from bot.store.base import CallbackRequest, ConversationState

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

    def __init__(self, db: aiosqlite.Connection, worker: str = "mia"):
        self._db = db
        self._worker = worker
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
            await self._rollback()
            raise

    async def _abort(self) -> None:
        self._pending.clear()
        if self._begun:
            await self._rollback()

    async def _rollback(self) -> None:
        """ROLLBACK if a transaction is open, decided on aiosqlite's thread behind the unit's own
        hops: one cancelled while queued or waiting for the write lock still runs (BEGIN IMMEDIATE
        and all), and reading `in_transaction` here would miss it. Shielded, so a cancellation now
        cannot leave the transaction open for the next unit on the shared connection."""
        def rollback(conn) -> None:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

        await asyncio.shield(_in_thread(self._db, rollback))

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

    async def get_request(self, ref: str, lock: bool = True) -> CallbackRequest | None:
        """A request by its reference (case-insensitive), or None (one writer: nothing to lock)."""
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

    async def outbox_waiting(self, channel: str, chat_id: str) -> bool:
        """Whether an earlier message to this chat is still pending (being sent, or waiting for a retry)."""
        row = await self._call(lambda conn: conn.execute(
            "SELECT 1 FROM outbox WHERE channel = ? AND chat_id = ? AND status = 'pending' LIMIT 1",
            (channel, chat_id)).fetchone())
        return row is not None

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

        holder = self._worker if lease_seconds > 0 else None

        def insert(conn):
            return [conn.execute(
                "INSERT INTO outbox (channel, chat_id, payload, next_attempt_at, created_at, leased_by) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (channel, chat_id, json.dumps(p, ensure_ascii=False), now + lease_seconds, now, holder)).lastrowid
                for p in payloads]

        return await self._call(insert)

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first."""
        rows = await self._call(lambda conn: conn.execute(RECENT_TURNS, (channel, chat_id, limit)).fetchall())
        return [dict(text=r[0], intent=r[1], reply=r[2], created_at=r[3]) for r in reversed(rows)]

    async def staff_messages_of(self, kind: str, target: str) -> list[tuple[str, str, str]]:
        """(channel, chat id, message id) of the first staff notification about a target in each staff chat."""
        rows = await self._call(lambda conn: conn.execute(
            "SELECT channel, chat_id, message_id, min(created_at) FROM staff_messages WHERE kind = ? AND target = ? "
            "GROUP BY channel, chat_id ORDER BY channel, chat_id", (kind, target)).fetchall())
        return [(r[0], r[1], r[2]) for r in rows]

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
