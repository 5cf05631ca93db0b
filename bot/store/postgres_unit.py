"""One PostgreSQL transaction (a unit of work), and the row helpers the store shares with it."""

from __future__ import annotations

import hashlib
import json
import time

import asyncpg

from bot.store.base import CallbackRequest, ConversationState
from bot.store.postgres_schema import CHAT_LOCK

REQUEST_COLUMNS = ("ref, channel, chat_id, office, region, fields, status, created_at, claimed_by, claimed_at, "
                   "done_by, done_at")

RECENT_TURNS = ("SELECT text, intent, reply, created_at FROM turns WHERE channel = $1 AND chat_id = $2 "
                "ORDER BY id DESC LIMIT $3")

INSERT_OUTBOX = ("INSERT INTO outbox (channel, chat_id, payload, next_attempt_at, created_at, leased_by) "
                 "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")


SAVE_STATE = ("INSERT INTO conversations (channel, chat_id, lang, pending, data, updated_at) "
              "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (channel, chat_id) DO UPDATE SET lang = excluded.lang, "
              "pending = excluded.pending, data = excluded.data, updated_at = excluded.updated_at")
INSERT_TURN = ("INSERT INTO turns (channel, chat_id, text, intent, confidence, region, office, reply, created_at) "
               "VALUES ({}, {}, {}, {}, {}, {}, {}, {}, {})")


def _turns(rows) -> list[dict]:
    return [dict(text=r[0], intent=r[1], reply=r[2], created_at=r[3]) for r in reversed(rows)]


def _request(row) -> CallbackRequest:
    return CallbackRequest(ref=row[0], channel=row[1], chat_id=row[2], office=row[3], region=row[4],
                           fields=json.loads(row[5]), status=row[6], created_at=row[7], claimed_by=row[8],
                           claimed_at=row[9], done_by=row[10], done_at=row[11])


def _changed(status: str) -> int:
    """Rows an UPDATE or DELETE changed, from its command tag ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


async def _claim(conn: asyncpg.Connection, channel: str, message_id: str) -> bool:
    """A concurrent claim of the same id waits for the first to commit or roll back, then knows."""
    return await conn.fetchval(
        "INSERT INTO processed_messages (channel, message_id, created_at) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING true", channel, message_id, time.time()) is not None


async def _lock_chat(conn: asyncpg.Connection, channel: str, chat_id: str) -> None:
    """Hold the conversation until the transaction ends: units of one chat (in any process) run one
    after the other, as SQLite's single writer makes them, so no saved state overwrites another."""
    await conn.execute("SELECT pg_advisory_xact_lock($1::int4, hashtext($2 || ' ' || $3))",
                       CHAT_LOCK, channel, chat_id)


async def _load(conn: asyncpg.Connection, channel: str, chat_id: str, locked: bool = False) -> ConversationState:
    if not locked:
        await _lock_chat(conn, channel, chat_id)
    row = await conn.fetchrow("SELECT lang, pending, data FROM conversations WHERE channel = $1 AND chat_id = $2",
                              channel, chat_id)
    if row is None:
        return ConversationState()
    return ConversationState(lang=row[0], pending=row[1], data=json.loads(row[2]))


class PostgresUnit:
    """Operations inside one transaction on one pooled connection (PostgresStore.unit begins it,
    commits it, or rolls it back). Loading a conversation locks it until the end of the unit."""

    def __init__(self, conn: asyncpg.Connection, worker: str = "mia"):
        self._conn = conn
        self._worker = worker
        self._state: tuple | None = None  # a conversation state to write (save_state), held back

    # -- messages and conversations ----------------------------------------------------------

    async def claim_message(self, channel: str, message_id: str) -> bool:
        """Record a message id; False when it was already handled (a re-delivery)."""
        return await _claim(self._conn, channel, message_id)

    async def claim_and_load(self, channel: str, message_id: str, chat_id: str) -> ConversationState | None:
        """claim_message and load_state together; None for a re-delivered message. The claim and the
        conversation's lock go in one statement; the state is read in the next, under the lock."""
        await self._flush()
        claimed = await self._conn.fetchval(
            "WITH c AS (INSERT INTO processed_messages (channel, message_id, created_at) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING 1) SELECT pg_advisory_xact_lock($4::int4, hashtext($1 || ' ' || $5)) "
            "IS NOT NULL FROM c", channel, message_id, time.time(), CHAT_LOCK, chat_id)
        if not claimed:
            return None
        return await _load(self._conn, channel, chat_id, locked=True)

    async def load_state(self, channel: str, chat_id: str) -> ConversationState:
        """The conversation's state, or a fresh one (locked until the unit ends)."""
        await self._flush()
        return await _load(self._conn, channel, chat_id)

    async def save_state(self, channel: str, chat_id: str, state: ConversationState) -> None:
        """Write the conversation's state: with the turn's log line when that follows (one statement
        for both), or before anything that reads the state, or at the commit."""
        await self._flush()
        self._state = (channel, chat_id, state.lang, state.pending, json.dumps(state.data, ensure_ascii=False),
                       time.time())

    async def _flush(self) -> None:
        """Write the state save_state holds back (PostgresStore.unit calls it before the commit)."""
        if self._state is not None:
            args, self._state = self._state, None
            await self._conn.execute(SAVE_STATE, *args)

    async def log_turn(self, channel: str, chat_id: str, text: str, intent: str | None, confidence: float,
                       region: str | None, office: str | None, reply: str) -> None:
        """Append one turn to the conversation log (with the state save_state holds, in one statement)."""
        turn = (channel, chat_id, text, intent, confidence, region, office, reply, time.time())
        if self._state is None:
            await self._conn.execute(INSERT_TURN.format(*(f"${n}" for n in range(1, 10))), *turn)
            return
        args, self._state = self._state, None
        await self._conn.execute(f"WITH s AS ({SAVE_STATE}) " + INSERT_TURN.format(*(f"${n}" for n in range(7, 16))),
                                 *args, *turn)

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first."""
        return _turns(await self._conn.fetch(RECENT_TURNS, channel, chat_id, limit))

    async def add_web_message(self, session_id: str, role: str, text: str, buttons: list[dict]) -> int:
        """Append a message to a web chat's transcript (what the page shows)."""
        return await self._conn.fetchval(
            "INSERT INTO web_messages (session_id, role, text, buttons, created_at) VALUES ($1, $2, $3, $4, $5) "
            "RETURNING id", session_id, role, text, json.dumps(buttons, ensure_ascii=False), time.time())

    # -- callback requests -------------------------------------------------------------------

    async def create_request(self, channel: str, chat_id: str, office: str, region: str,
                             fields: dict) -> CallbackRequest:
        """Save a confirmed request and give it its reference, e.g. RKT-2026-000123."""
        now = time.time()
        row_id = await self._conn.fetchval(
            "INSERT INTO callback_requests (channel, chat_id, office, region, fields, created_at) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            channel, chat_id, office, region, json.dumps(fields, ensure_ascii=False), now)
        ref = f"RKT-{time.gmtime(now).tm_year}-{row_id:06d}"
        row = await self._conn.fetchrow(
            f"UPDATE callback_requests SET ref = $1 WHERE id = $2 RETURNING {REQUEST_COLUMNS}", ref, row_id)
        return _request(row)

    async def get_request(self, ref: str, lock: bool = True) -> CallbackRequest | None:
        """A request by its reference (case-insensitive), or None. With `lock`, the request's
        conversation is held until the unit ends (read again once held): of two staff claiming it at
        once in two workers, the second sees the first's claim, as SQLite's single writer would show it."""
        sql = f"SELECT {REQUEST_COLUMNS} FROM callback_requests WHERE ref = $1"
        row = await self._conn.fetchrow(sql, ref.strip().upper())
        if row is None or not lock:
            return _request(row) if row else None
        await _lock_chat(self._conn, row[1], row[2])
        row = await self._conn.fetchrow(sql, row[0])
        return _request(row) if row else None

    async def latest_request(self, channel: str, chat_id: str) -> CallbackRequest | None:
        """The newest request made from this chat, or None (the conversation is held, as load_state holds it)."""
        await _lock_chat(self._conn, channel, chat_id)
        row = await self._conn.fetchrow(
            f"SELECT {REQUEST_COLUMNS} FROM callback_requests WHERE channel = $1 AND chat_id = $2 "
            "ORDER BY id DESC LIMIT 1", channel, chat_id)
        return _request(row) if row else None

    async def set_request_status(self, ref: str, status: str, by: str) -> None:
        """Record a claim ("claimed") or a close ("done"), with who and when."""
        column = {"claimed": "claimed", "done": "done"}[status]
        await self._conn.execute(
            f"UPDATE callback_requests SET status = $1, {column}_by = $2, {column}_at = $3 WHERE ref = $4",
            status, by, time.time(), ref)

    # -- outbox ------------------------------------------------------------------------------

    async def enqueue(self, channel: str, chat_id: str, payload: dict) -> int:
        """Queue a message for the outbox worker; it leaves only if this transaction commits."""
        now = time.time()
        return await self._conn.fetchval(INSERT_OUTBOX, channel, chat_id, json.dumps(payload, ensure_ascii=False),
                                         now, now, None)

    async def enqueue_many(self, channel: str, chat_id: str, payloads: list[dict], lease_seconds: float = 0.0
                           ) -> list[int]:
        """Queue several messages, in order. With a lease, the caller sends them itself right after
        the commit and the worker leaves them alone until the lease ends (or release_outbox ends it)."""
        now = time.time()
        holder = self._worker if lease_seconds > 0 else None
        return [await self._conn.fetchval(INSERT_OUTBOX, channel, chat_id, json.dumps(p, ensure_ascii=False),
                                          now + lease_seconds, now, holder) for p in payloads]

    async def outbox_waiting(self, channel: str, chat_id: str) -> bool:
        """Whether an earlier message to this chat is still pending (being sent, or waiting for a retry)."""
        return await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE channel = $1 AND chat_id = $2 AND status = 'pending')",
            channel, chat_id)

    async def recent_outbox(self, channel: str, chat_id: str, since: float) -> int:
        """How many messages were queued for this chat since `since` (sent or not)."""
        return await self._conn.fetchval(
            "SELECT count(*) FROM outbox WHERE channel = $1 AND chat_id = $2 AND created_at >= $3",
            channel, chat_id, since)

    async def find_staff_message(self, channel: str, chat_id: str, message_id: str) -> tuple[str, str] | None:
        """(kind, target) of a notification MIA sent to a staff chat, or None."""
        row = await self._conn.fetchrow(
            "SELECT kind, target FROM staff_messages WHERE channel = $1 AND chat_id = $2 AND message_id = $3",
            channel, chat_id, message_id)
        return (row[0], row[1]) if row else None

    async def staff_messages_of(self, kind: str, target: str) -> list[tuple[str, str, str]]:
        """(channel, chat id, message id) of the first staff notification about a target in each staff chat."""
        rows = await self._conn.fetch(
            "SELECT DISTINCT ON (channel, chat_id) channel, chat_id, message_id FROM staff_messages "
            "WHERE kind = $1 AND target = $2 ORDER BY channel, chat_id, created_at, message_id", kind, target)
        return [(r[0], r[1], r[2]) for r in rows]

    # -- the operators' review log -----------------------------------------------------------

    async def log_unanswered(self, channel: str, office: str | None, text: str, kind: str,
                             candidates: list[tuple[str, float]], ref: str | None = None,
                             answered: str | None = None) -> None:
        """A message for the operators' review (text already masked): "fallback", "menu" or "not_helpful"."""
        await self._conn.execute(
            "INSERT INTO unanswered (channel, office, text, kind, candidates, created_at, ref, answered) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            channel, office, text, kind, json.dumps(candidates), time.time(), ref, answered)

    async def label_unanswered(self, ref: str, chosen: str) -> None:
        """The citizen chose `chosen` from the menu MIA showed for row `ref`: the message is labelled."""
        await self._conn.execute(
            "UPDATE unanswered SET chosen = $1, kind = CASE kind WHEN 'menu' THEN 'menu_choice' ELSE kind END "
            "WHERE ref = $2 AND chosen IS NULL", chosen, ref)

    # -- WhatsApp ----------------------------------------------------------------------------

    async def store_whatsapp_update(self, body: str) -> int | None:
        """Keep a raw webhook body until it is handled; None, and nothing stored, for a body already kept."""
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        return await self._conn.fetchval(
            "INSERT INTO whatsapp_inbox (body, received_at, body_hash) VALUES ($1, $2, $3) "
            "ON CONFLICT (body_hash) DO NOTHING RETURNING id", body, time.time(), digest)
