"""The PostgreSQL store (asyncpg pool): the same contract as SQLite's, for several workers on one database."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import asyncpg

from bot.store.base import CallbackRequest
from bot.store.postgres_schema import CHAT_LOCK, MIGRATION_LOCK, MIGRATIONS, TRACKING
from bot.store.postgres_staff import PostgresStaffDeskTables
from bot.store.postgres_work import PostgresWorkTables
from bot.store.postgres_unit import RECENT_TURNS, REQUEST_COLUMNS, PostgresUnit, _changed, _claim, _request, _turns

class _Connection(asyncpg.Connection):
    """A pooled connection handed back as it is: MIA keeps no session state (its locks end with their
    transactions, it sets nothing and listens to nothing), so the reset query asyncpg sends on every
    release (unlock all, close all, unlisten, reset all: a round trip per unit) has nothing to do."""

    def get_reset_query(self) -> str:
        return ""


EXPIRE_CHUNK = 200  # conversations per transaction: each holds its chat's lock until the commit
# The connection holding a worker's name notices a peer that vanished (a host that died) in about 25 s,
# so the server frees the name for the worker's restart.
KEEPALIVE = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5", "tcp_keepalives_count": "3"}


class PostgresStore(PostgresWorkTables, PostgresStaffDeskTables):
    """Store on a PostgreSQL database, e.g. postgresql://mia@db.internal:5432/mia.

    A pool of connections serves the process; a unit is one transaction on one connection. Reads
    outside a unit run on a connection of their own and see committed work only. Several worker
    processes may share the database: a unit that loads a conversation holds that conversation
    (an advisory lock) until it ends, migrations run under a lock at open(), and a running worker
    holds its name (hold_worker_id) so that no other process works under it.
    """

    # How long hold_worker_id waits for the name before refusing: a worker killed a moment ago holds
    # it until the server has noticed that its connection is gone.
    WORKER_ID_WAIT_SECONDS = 5.0

    def __init__(self, url: str, min_size: int = 1, max_size: int = 10, worker: str = "mia"):
        self.url = url
        self.worker = worker  # leases of the outbox and of named jobs are held under this name
        self.min_size = min_size
        self.max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._worker_conn: asyncpg.Connection | None = None  # holds the worker's name (hold_worker_id)

    async def open(self) -> None:
        """Connect and apply pending migrations."""
        self._pool = await asyncpg.create_pool(self.url, min_size=self.min_size, max_size=self.max_size,
                                               server_settings={"application_name": "mia"},
                                               connection_class=_Connection)
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def hold_worker_id(self) -> None:
        """Hold `worker` while the store is open: a session advisory lock on a connection of its own.
        Another live process holding it (a second worker under the same MIA_WORKER_ID) would take the
        named leases too and, starting, end this one's outbox leases, so that start is refused."""
        if self._worker_conn is not None:
            return
        conn = await asyncpg.connect(self.url, server_settings={"application_name": f"mia {self.worker}",
                                                                **KEEPALIVE})
        deadline = time.monotonic() + self.WORKER_ID_WAIT_SECONDS
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                                          f"worker:{self.worker}"):
                if time.monotonic() >= deadline:
                    raise ValueError(f"another worker is running as MIA_WORKER_ID={self.worker} on this database: "
                                     "give each worker its own MIA_WORKER_ID")
                await asyncio.sleep(0.5)
        except BaseException:
            await conn.close()
            raise
        self._worker_conn = conn

    async def close(self) -> None:
        """Close the pool (waiting for the units in hand), then give the worker's name up."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
        if self._worker_conn is not None:
            conn, self._worker_conn = self._worker_conn, None
            await conn.close()

    async def _migrate(self) -> None:
        """Apply pending migrations, one transaction each, under an advisory lock: of several
        processes starting at once, one applies a migration and the others then find it applied."""
        async with self._require().acquire() as conn:
            while True:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock($1::int8)", MIGRATION_LOCK)
                    await conn.execute(TRACKING)
                    version = await conn.fetchval("SELECT count(*) FROM schema_migrations")
                    if version >= len(MIGRATIONS):
                        return
                    await conn.execute(MIGRATIONS[version])
                    await conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                                       version + 1, time.time())

    def _require(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    def _read(self) -> asyncpg.Pool:
        """Where a read outside any unit goes: a pooled connection in autocommit (committed work only)."""
        return self._require()

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection inside one transaction: committed at the end, rolled back on any error."""
        async with self._require().acquire() as conn:
            async with conn.transaction():
                yield conn

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[PostgresUnit]:
        """One transaction: everything done through the unit commits together or not at all."""
        async with self._tx() as conn:
            unit = PostgresUnit(conn, self.worker)
            yield unit
            await unit._flush()

    async def schema_version(self) -> int:
        """The number of migrations applied."""
        return await self._read().fetchval("SELECT count(*) FROM schema_migrations")

    async def recent_turns(self, channel: str, chat_id: str, limit: int = 10) -> list[dict]:
        """The last turns of a conversation, oldest first."""
        return _turns(await self._read().fetch(RECENT_TURNS, channel, chat_id, limit))

    async def list_requests(self, office: str | None = None, status: str | None = None) -> list[CallbackRequest]:
        """Callback requests, oldest first, optionally of one office and/or status."""
        sql, args = _filtered(f"SELECT {REQUEST_COLUMNS} FROM callback_requests WHERE true", [], office=office,
                              status=status)
        return [_request(r) for r in await self._read().fetch(sql + " ORDER BY id", *args)]

    # -- outbox ------------------------------------------------------------------------------

    # -- web chat ----------------------------------------------------------------------------

    async def web_messages(self, session_id: str, after: int = 0, limit: int = 500) -> list[dict]:
        """A web chat's transcript after message id `after`, oldest first."""
        rows = await self._read().fetch(
            "SELECT id, role, text, buttons, created_at FROM web_messages WHERE session_id = $1 AND id > $2 "
            "ORDER BY id LIMIT $3", session_id, after, limit)
        return [{"id": r[0], "role": r[1], "text": r[2], "buttons": json.loads(r[3]), "at": r[4]} for r in rows]

    async def web_transcript_bytes(self, session_id: str) -> int:
        """How much a web chat's transcript holds (characters of its texts and buttons)."""
        return await self._read().fetchval(
            "SELECT coalesce(sum(length(text) + length(buttons)), 0) FROM web_messages WHERE session_id = $1",
            session_id)

    async def expire_single_turn_web(self, older_than: float, batch: int = 2000) -> int:
        """Delete web conversations last touched before `older_than` that never got past one turn, with
        their turns, transcript and message ids; how many went. A conversation a unit holds is left
        for the next run; each one is checked again once its lock is held."""
        chunk = max(1, min(batch, EXPIRE_CHUNK))
        total = 0
        while True:
            async with self._tx() as conn:
                candidates = [r[0] for r in await conn.fetch(
                    "SELECT chat_id FROM conversations c WHERE channel = 'web' AND updated_at < $1 AND (SELECT "
                    "count(*) FROM (SELECT 1 FROM turns t WHERE t.channel = 'web' AND t.chat_id = c.chat_id "
                    "LIMIT 2) two) <= 1 ORDER BY chat_id LIMIT $2", older_than, chunk)]
                locked = [r[0] for r in await conn.fetch(
                    "SELECT chat FROM unnest($1::text[]) AS chat WHERE pg_try_advisory_xact_lock($2::int4, "
                    "hashtext('web ' || chat))", candidates, CHAT_LOCK)]
                gone = [r[0] for r in await conn.fetch(
                    "DELETE FROM conversations c WHERE channel = 'web' AND chat_id = ANY($1::text[]) "
                    "AND updated_at < $2 AND (SELECT count(*) FROM (SELECT 1 FROM turns t WHERE t.channel = 'web' "
                    "AND t.chat_id = c.chat_id LIMIT 2) two) <= 1 RETURNING chat_id", locked, older_than)]
                if gone:
                    await conn.execute("DELETE FROM turns WHERE channel = 'web' AND chat_id = ANY($1::text[])", gone)
                    await conn.execute("DELETE FROM web_messages WHERE session_id = ANY($1::text[])", gone)
                    await conn.execute(
                        "DELETE FROM processed_messages p USING unnest($1::text[]) AS g(chat) WHERE p.channel = 'web' "
                        "AND p.message_id >= (g.chat || ':') COLLATE \"C\" "
                        "AND p.message_id < (g.chat || ';') COLLATE \"C\"", gone)
            total += len(gone)
            if len(candidates) < chunk or not gone:
                return total

    # -- WhatsApp bookkeeping ----------------------------------------------------------------

    async def add_whatsapp_update(self, body: str) -> int | None:
        """Keep a raw webhook body, kept by this worker, until it is handled; None, and nothing stored, for a
        body already kept (a replay)."""
        digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
        return await self._require().fetchval(
            "INSERT INTO whatsapp_inbox (body, received_at, body_hash, worker) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (body_hash) DO NOTHING RETURNING id", body, time.time(), digest, self.worker)

    async def pending_whatsapp_updates(self, received_before: float | None = None,
                                       mine: bool = False) -> list[tuple[int, str]]:
        """Stored webhook bodies not yet handled, oldest first; optionally only those received before a
        time (what a worker that died left behind) and/or (mine) kept by this worker."""
        rows = await self._read().fetch("SELECT id, body FROM whatsapp_inbox WHERE processed_at IS NULL "
                                        "AND ($1::float8 IS NULL OR received_at < $1) "
                                        "AND ($2::text IS NULL OR worker = $2) ORDER BY id",
                                        received_before, self.worker if mine else None)
        return [(r[0], r[1]) for r in rows]

    async def whatsapp_update_done(self, row_id: int, error: str | None) -> None:
        async with self._tx() as conn:
            await conn.execute("UPDATE whatsapp_inbox SET processed_at = $1, error = $2 WHERE id = $3",
                               time.time(), error, row_id)

    async def touch_whatsapp_contact(self, chat_id: str, inbound_at: float) -> list[str]:
        """Record a citizen's message time (opens the 24-hour window); return the numbered options last shown."""
        async with self._tx() as conn:
            options = await conn.fetchval(
                "INSERT INTO whatsapp_contacts (chat_id, last_inbound_at) VALUES ($1, $2) ON CONFLICT (chat_id) "
                "DO UPDATE SET last_inbound_at = greatest(whatsapp_contacts.last_inbound_at, "
                "excluded.last_inbound_at) RETURNING options", chat_id, inbound_at)
        return json.loads(options)

    async def whatsapp_contact(self, chat_id: str) -> dict | None:
        row = await self._read().fetchrow(
            "SELECT last_inbound_at, options FROM whatsapp_contacts WHERE chat_id = $1", chat_id)
        return {"last_inbound_at": row[0], "options": json.loads(row[1])} if row else None

    async def set_whatsapp_options(self, chat_id: str, options: list[str]) -> None:
        async with self._tx() as conn:
            await conn.execute("UPDATE whatsapp_contacts SET options = $1 WHERE chat_id = $2",
                               json.dumps(options, ensure_ascii=False), chat_id)

    async def close_whatsapp_window(self, chat_id: str) -> None:
        """WhatsApp said the 24-hour window is closed: only templates until the citizen writes again."""
        async with self._tx() as conn:
            await conn.execute("UPDATE whatsapp_contacts SET last_inbound_at = 0 WHERE chat_id = $1", chat_id)

    async def record_whatsapp_status(self, message_id: str, status: str, chat_id: str, error_code: int | None) -> bool:
        """Record a delivery status once; False for a status already recorded (a replay)."""
        async with self._tx() as conn:
            if not await _claim(conn, "whatsapp", f"status:{message_id}:{status}"):
                return False
            await conn.execute("INSERT INTO whatsapp_statuses (message_id, status, chat_id, error_code, recorded_at) "
                               "VALUES ($1, $2, $3, $4, $5)", message_id, status, chat_id, error_code, time.time())
            return True

    # -- review, digest, confirmed examples --------------------------------------------------

    async def unanswered_since(self, since: float, office: str | None = None) -> list[dict]:
        """Logged questions (not understood, menus, answers a citizen said did not help) since a time, oldest first."""
        return await self.review_items(since=since, office=office, status=None)

    async def review_items(self, since: float = 0.0, office: str | None = None, status: str | None = "open",
                           kinds: tuple[str, ...] | None = None) -> list[dict]:
        """The review log, oldest first: masked text, kind, candidates, answered, chosen, decision."""
        sql = ("SELECT id, channel, office, text, kind, candidates, created_at, answered, chosen, status, "
               "decided_intent FROM unanswered WHERE created_at >= $1")
        sql, args = _filtered(sql, [since], office=office, status=status)
        if kinds:
            args.append(list(kinds))
            sql += f" AND kind = ANY(${len(args)}::text[])"
        rows = await self._read().fetch(sql + " ORDER BY id", *args)
        return [{"id": r[0], "channel": r[1], "office": r[2], "text": r[3], "kind": r[4],
                 "candidates": json.loads(r[5]), "at": r[6], "answered": r[7], "chosen": r[8], "status": r[9],
                 "decided_intent": r[10]} for r in rows]

    async def decide_review(self, ids: list[int], status: str, intent: str | None, by: str) -> int:
        """An operator's decision on review rows ("confirmed" with an intent, or "dropped"); open rows only."""
        if not ids:
            return 0
        async with self._tx() as conn:
            return _changed(await conn.execute(
                "UPDATE unanswered SET status = $1, decided_intent = $2, decided_by = $3, decided_at = $4 "
                "WHERE id = ANY($5::int8[]) AND status = 'open'", status, intent, by, time.time(), list(ids)))

    async def add_confirmed_example(self, text: str, intent: str | None, decided_by: str) -> None:
        """An operator's decision on a logged question: a labelled case for `mia intents test`."""
        async with self._tx() as conn:
            await conn.execute("INSERT INTO confirmed_examples (text, intent, decided_by, created_at) "
                               "VALUES ($1, $2, $3, $4)", text, intent, decided_by, time.time())

    async def confirmed_examples(self) -> list[dict]:
        rows = await self._read().fetch("SELECT text, intent FROM confirmed_examples ORDER BY id")
        return [{"text": r[0], "intent": r[1]} for r in rows]

    async def add_digest_item(self, example: str, count: int, candidates: list[str],
                              review_ids: list[int] = ()) -> int:
        async with self._tx() as conn:
            return await conn.fetchval(
                "INSERT INTO digest_items (example, count, candidates, created_at, review_ids) "
                "VALUES ($1, $2, $3, $4, $5) RETURNING id",
                example, count, json.dumps(candidates), time.time(), json.dumps(list(review_ids)))

    async def digest_item(self, item_id: int) -> dict | None:
        row = await self._read().fetchrow(
            "SELECT id, example, count, candidates, status, review_ids FROM digest_items WHERE id = $1", item_id)
        return {"id": row[0], "example": row[1], "count": row[2], "candidates": json.loads(row[3]),
                "status": row[4], "review_ids": json.loads(row[5])} if row else None

    async def decide_digest_item(self, item_id: int, status: str, by: str) -> bool:
        """Mark an item decided; False when it already was (a second press changes nothing)."""
        async with self._tx() as conn:
            return _changed(await conn.execute(
                "UPDATE digest_items SET status = $1, decided_by = $2 WHERE id = $3 AND status = 'open'",
                status, by, item_id)) == 1

    # -- settings kept with the data ---------------------------------------------------------

    async def get_meta(self, key: str) -> str | None:
        return await self._read().fetchval("SELECT value FROM meta WHERE key = $1", key)

    async def meta_default(self, key: str, value: str) -> str:
        """The stored value of `key`, storing `value` first if there is none (the first writer wins)."""
        async with self._tx() as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING", key, value)
            return await conn.fetchval("SELECT value FROM meta WHERE key = $1", key)

    async def set_meta(self, key: str, value: str) -> None:
        async with self._tx() as conn:
            await conn.execute("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) "
                               "DO UPDATE SET value = excluded.value", key, value)

    # -- retention ---------------------------------------------------------------------------

    async def purge(self, older_than: float, dry_run: bool = False, vacuum: bool = False) -> dict[str, int]:
        """Retention: nothing personal older than `older_than` stays in any table. Requests closed
        before it, or made before it and never closed, keep only office, region, status and times;
        conversations, every log and every table that grows with traffic lose their older rows.
        Counts per table. With `vacuum` the changed tables are rewritten (VACUUM FULL), so no old
        row version stays in their files."""
        anonymize = ("(fields != '{}' OR chat_id != '' OR claimed_by IS NOT NULL OR done_by IS NOT NULL) AND "
                     "((status = 'done' AND done_at < $1) OR created_at < $1)")
        deletes = {"conversations": "updated_at", "webhook_updates": "received_at", "leases": "expires_at", "turns": "created_at", "web_messages": "created_at",
                   "unanswered": "created_at", "processed_messages": "created_at",
                   "whatsapp_updates": "received_at", "whatsapp_contacts": "last_inbound_at",
                   "whatsapp_statuses": "recorded_at", "staff_messages": "created_at", "outbox": "created_at",
                   "digest_items": "created_at", "confirmed_examples": "created_at"}
        tables = {"whatsapp_updates": "whatsapp_inbox", "webhook_updates": "inbox"}
        queries = {"requests_anonymized": ("callback_requests", anonymize,
                                           "UPDATE callback_requests SET fields = '{}', chat_id = '', "
                                           f"claimed_by = NULL, done_by = NULL WHERE {anonymize}")}
        for name, column in deletes.items():
            table = tables.get(name, name)
            where = f"{column} < $1" + (" AND processed_at IS NOT NULL" if table in ("whatsapp_inbox", "inbox") else "")
            queries[f"{name}_deleted"] = (table, where, f"DELETE FROM {table} WHERE {where}")
        counts: dict[str, int] = {}
        async with self._tx() as conn:
            for name, (table, where, change) in queries.items():
                if dry_run:
                    counts[name] = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", older_than)
                else:
                    counts[name] = _changed(await conn.execute(change, older_than))
        if vacuum and not dry_run:
            async with self._require().acquire() as conn:
                await conn.execute("VACUUM (FULL) " + ", ".join(table for table, _, _ in queries.values()))
        return counts


__all__ = ["MIGRATIONS", "PostgresStore", "PostgresUnit"]


def _filtered(sql: str, args: list, **equal) -> tuple[str, list]:
    """`sql` with "AND column = $n" for each given (non-empty) value, and the arguments."""
    for column, value in equal.items():
        if value:
            args.append(value)
            sql += f" AND {column} = ${len(args)}"
    return sql, args
