"""Work the PostgreSQL store hands out to several workers: the outbox and its leases, the webhook
inbox, named leases."""

from __future__ import annotations

import json
import random
import time

from bot.store.base import OutboxItem
from bot.store.postgres_schema import OUTBOX_LOCK
from bot.store.postgres_unit import _changed

# Outbox rows of the given channels ($channels NULL: all) and not of the skipped chats ("channel chat_id").
_OUTBOX_FILTER = ("({c}::text[] IS NULL OR channel = ANY({c}::text[])) "
                  "AND NOT (channel || ' ' || chat_id = ANY({s}::text[]))")
# Due rows that no older pending row of their chat holds back (in backoff, or leased to a sender).
_DUE = ("SELECT id, channel, chat_id, payload, attempts, next_attempt_at FROM outbox o WHERE status = 'pending' "
        f"AND next_attempt_at <= $1 AND {_OUTBOX_FILTER.format(c='$3', s='$4')} AND NOT EXISTS (SELECT 1 "
        "FROM outbox e WHERE e.status = 'pending' AND e.channel = o.channel AND e.chat_id = o.chat_id "
        "AND e.id < o.id AND e.next_attempt_at > $1) ORDER BY id LIMIT $2")


SWEEP_CHANCE = 1 / 64  # of a hit also deleting the finished windows


def _skip(skip) -> list[str]:
    return [f"{c} {i}" for c, i in skip]


def _items(rows) -> list[OutboxItem]:
    return [OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]


class PostgresWorkTables:
    """Mixed into PostgresStore: uses its `_tx` (one transaction), `_read` (committed reads) and
    `worker` (the name this process holds leases under)."""

    worker: str

    # -- outbox ------------------------------------------------------------------------------

    async def due_outbox(self, now: float, limit: int = 50, channels: list[str] | None = None,
                         skip: list[tuple[str, str]] = ()) -> list[OutboxItem]:
        """Pending rows that are due and that no older pending row of their chat holds back (a chat's
        messages leave in order), oldest first; optionally only of `channels`, not of the chats in `skip`."""
        return _items(await self._read().fetch(_DUE, now, limit, None if channels is None else list(channels),
                                               _skip(skip)))

    async def lease_outbox(self, now: float, lease_seconds: float, limit: int = 50,
                           channels: list[str] | None = None, skip: list[tuple[str, str]] = ()) -> list[OutboxItem]:
        """due_outbox, and the rows leased to this worker for `lease_seconds` in the same transaction.

        Workers lease one after another (a transaction lock on the outbox, held for one statement's
        time), and each reads after the previous one's commit: a leased row's future time then holds
        back the younger rows of its chat, so two workers never send one chat's messages at once.
        A plain read first: an idle outbox costs no lock and no write."""
        if not await self.due_outbox(now, 1, channels, skip):
            return []
        async with self._tx() as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1::int8)", OUTBOX_LOCK)
            items = _items(await conn.fetch(_DUE, now, limit, None if channels is None else list(channels),
                                            _skip(skip)))
            if items:
                await conn.execute("UPDATE outbox SET next_attempt_at = $1, leased_by = $2 WHERE id = ANY($3::int8[])",
                                   now + lease_seconds, self.worker, [i.id for i in items])
            return items

    async def next_outbox_due(self, now: float, channels: list[str] | None = None,
                              skip: list[tuple[str, str]] = ()) -> float | None:
        """When the next chat's oldest pending row falls due after `now` (None: no such row)."""
        return await self._read().fetchval(
            "SELECT min(next_attempt_at) FROM outbox o WHERE status = 'pending' AND next_attempt_at > $1 "
            f"AND {_OUTBOX_FILTER.format(c='$2', s='$3')} AND NOT EXISTS (SELECT 1 FROM outbox e "
            "WHERE e.status = 'pending' AND e.channel = o.channel AND e.chat_id = o.chat_id AND e.id < o.id)",
            now, None if channels is None else list(channels), _skip(skip))

    async def renew_outbox(self, ids: list[int], lease_seconds: float) -> int:
        """Extend this worker's lease on the pending rows `ids` to `lease_seconds` from now, where it still
        holds them and the lease has not run out (a row whose lease ran out may be another worker's
        already); how many it renewed."""
        now = time.time()
        async with self._tx() as conn:
            return _changed(await conn.execute(
                "UPDATE outbox SET next_attempt_at = $1 WHERE status = 'pending' AND leased_by = $2 "
                "AND next_attempt_at > $3 AND id = ANY($4::int8[])", now + lease_seconds, self.worker, now, list(ids)))

    async def outbox_sent(self, item: OutboxItem, message_id: str | None) -> bool:
        """Mark a row sent, if this worker still holds it (False: another worker does, or it is no longer
        pending); remember a staff notification either way, so replies and buttons find their target
        (the message was sent)."""
        bind = item.payload.get("bind")
        async with self._tx() as conn:
            held = _changed(await conn.execute(
                "UPDATE outbox SET status = 'sent', sent_at = $1, sent_message_id = $2, leased_by = NULL, "
                "attempts = attempts + 1 WHERE id = $3 AND status = 'pending' AND leased_by = $4",
                time.time(), message_id, item.id, self.worker)) == 1
            if bind and message_id is not None:
                await conn.execute(
                    "INSERT INTO staff_messages (channel, chat_id, message_id, kind, target, created_at) "
                    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (channel, chat_id, message_id) DO UPDATE SET "
                    "kind = excluded.kind, target = excluded.target, created_at = excluded.created_at",
                    item.channel, item.chat_id, str(message_id), bind["kind"], bind["target"], time.time())
            return held

    async def outbox_failed(self, item: OutboxItem, error: str, retry_at: float | None) -> bool:
        """Record a failed attempt of a row this worker holds: retry at `retry_at`, or give up (status
        'failed') when None. False when it no longer holds the row (nothing recorded)."""
        outcome, args = ("status = 'failed'", ()) if retry_at is None else ("next_attempt_at = $4", (retry_at,))
        async with self._tx() as conn:
            change = await conn.execute(
                f"UPDATE outbox SET {outcome}, attempts = attempts + 1, last_error = $1, leased_by = NULL "
                "WHERE id = $2 AND status = 'pending' AND leased_by = $3", error[:500], item.id, self.worker, *args)
        return _changed(change) == 1

    async def release_outbox(self, channel: str | None, ids: list[int] | None = None) -> int:
        """End leases now: of the given rows this worker holds, or (ids None, at start-up) every lease this
        worker holds on the channel's rows (None: on any channel). Other workers' leases are left to expire."""
        now = time.time()
        async with self._tx() as conn:
            if ids is None:
                return _changed(await conn.execute(
                    "UPDATE outbox SET next_attempt_at = $1, leased_by = NULL WHERE status = 'pending' "
                    "AND ($2::text IS NULL OR channel = $2) AND next_attempt_at > $1 "
                    "AND (leased_by = $3 OR (leased_by IS NULL AND attempts = 0))", now, channel, self.worker))
            return _changed(await conn.execute(
                "UPDATE outbox SET next_attempt_at = $1, leased_by = NULL WHERE status = 'pending' "
                "AND leased_by = $2 AND id = ANY($3::int8[])", now, self.worker, list(ids)))

    # -- named leases ------------------------------------------------------------------------

    async def take_lease(self, name: str, seconds: float, now: float | None = None) -> bool:
        """Hold the lease `name` (the weekly digest, the retention purge) for `seconds`: True when this
        worker holds it now (taken, or renewed), False while another worker's has not expired."""
        now = time.time() if now is None else now
        async with self._tx() as conn:
            return await conn.fetchval(
                "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE "
                "SET holder = excluded.holder, expires_at = excluded.expires_at "
                "WHERE leases.holder = excluded.holder OR leases.expires_at <= $4 RETURNING holder",
                name, self.worker, now + seconds, now) is not None

    # -- webhook inbox -----------------------------------------------------------------------

    async def inbox_add(self, channel: str, key: str, chat_id: str, body: str) -> bool:
        """Keep a webhook update before answering 200; False for one already kept (a re-delivery)."""
        async with self._tx() as conn:
            return _changed(await conn.execute(
                "INSERT INTO inbox (channel, key, chat_id, body, received_at, worker) VALUES ($1, $2, $3, $4, $5, $6) "
                "ON CONFLICT (channel, key) DO NOTHING", channel, key, chat_id, body, time.time(), self.worker)) == 1

    async def inbox_pending(self, channel: str, chat_id: str | None = None, received_before: float | None = None,
                            limit: int = 500, mine: bool = False) -> list[tuple[int, str, str]]:
        """Kept updates not yet handled, (id, chat id, body) in the order they arrived; of one chat,
        received before a time (the ones a worker that died left behind), or kept by this worker."""
        rows = await self._read().fetch(
            "SELECT id, chat_id, body FROM inbox WHERE processed_at IS NULL AND channel = $1 "
            "AND ($2::text IS NULL OR chat_id = $2) AND ($3::float8 IS NULL OR received_at < $3) "
            "AND ($5::text IS NULL OR worker = $5) ORDER BY id LIMIT $4",
            channel, chat_id, received_before, limit, self.worker if mine else None)
        return [(r[0], r[1], r[2]) for r in rows]

    async def inbox_done(self, row_id: int, error: str | None = None) -> None:
        """A kept update was handled (or failed for good, with the error)."""
        async with self._tx() as conn:
            await conn.execute("UPDATE inbox SET processed_at = $1, error = $2 WHERE id = $3",
                               time.time(), error, row_id)

    # -- hits counted for limits shared by workers ---------------------------------------------

    async def count_hit(self, key: str, window_start: float, window: float) -> tuple[int, int]:
        """Count one hit of `key` in the window starting at `window_start`; (hits in it so far, hits in
        the window before). Now and then the windows older than those two go."""
        async with self._tx() as conn:
            if random.random() < SWEEP_CHANCE:
                await conn.execute("DELETE FROM hits WHERE window_start < $1", window_start - window)
            now = await conn.fetchval(
                "INSERT INTO hits (key, window_start, count) VALUES ($1, $2, 1) ON CONFLICT (key, window_start) "
                "DO UPDATE SET count = hits.count + 1 RETURNING count", key, window_start)
            before = await conn.fetchval("SELECT count FROM hits WHERE key = $1 AND window_start = $2",
                                         key, window_start - window)
            return now, before or 0
