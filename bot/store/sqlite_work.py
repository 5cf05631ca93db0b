"""Work the SQLite store hands out: the outbox and its leases, the webhook inbox, named leases, hit counts."""

from __future__ import annotations

import json
import random
import time

from bot.store.base import OutboxItem
from bot.store.sqlite_unit import _OUTBOX_FILTER, _outbox_filter_args

# Due rows that no older pending row of their chat holds back (a row in backoff or leased to a
# sender holds the younger ones: a chat's messages leave in order).
_DUE = ("SELECT id, channel, chat_id, payload, attempts, next_attempt_at FROM outbox o WHERE status = 'pending' "
        f"AND next_attempt_at <= :now AND {_OUTBOX_FILTER} AND NOT EXISTS (SELECT 1 FROM outbox e "
        "WHERE e.status = 'pending' AND e.channel = o.channel AND e.chat_id = o.chat_id AND e.id < o.id "
        "AND e.next_attempt_at > :now) ORDER BY id LIMIT :limit")


SWEEP_CHANCE = 1 / 64  # of a hit also deleting the finished windows


def _items(rows) -> list[OutboxItem]:
    return [OutboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]


class WorkTables:
    """Mixed into SQLiteStore: uses its `_tx` (one transaction), `_query` (a committed read) and
    `worker` (the name this process holds leases under)."""

    worker: str

    # -- outbox ----------------------------------------------------------------------------

    async def due_outbox(self, now: float, limit: int = 50, channels: list[str] | None = None,
                         skip: list[tuple[str, str]] = ()) -> list[OutboxItem]:
        """Pending rows that are due and that no older row of their chat holds back (a chat's
        messages leave in order), oldest first: only what can be sent now is read. Optionally
        only of `channels`, and not of the chats in `skip` ((channel, chat id) pairs)."""
        async with self._query(_DUE, {"now": now, "limit": limit, **_outbox_filter_args(channels, skip)}) as cur:
            return _items(await cur.fetchall())

    async def lease_outbox(self, now: float, lease_seconds: float, limit: int = 50,
                           channels: list[str] | None = None, skip: list[tuple[str, str]] = ()) -> list[OutboxItem]:
        """due_outbox, and the rows leased to this worker for `lease_seconds` in the same
        transaction: no other sender takes them meanwhile (nor the younger rows of their chats).
        A plain read first: an idle outbox costs no write transaction."""
        if not await self.due_outbox(now, 1, channels, skip):
            return []

        def run(conn) -> list[OutboxItem]:
            items = _items(conn.execute(_DUE, {"now": now, "limit": limit,
                                               **_outbox_filter_args(channels, skip)}).fetchall())
            conn.executemany("UPDATE outbox SET next_attempt_at = ?, leased_by = ? WHERE id = ?",
                             [(now + lease_seconds, self.worker, i.id) for i in items])
            return items

        return await self._tx(run)

    async def next_outbox_due(self, now: float, channels: list[str] | None = None,
                              skip: list[tuple[str, str]] = ()) -> float | None:
        """When the next chat's oldest pending row falls due after `now` (None: no such row):
        the outbox worker sleeps until then instead of reading rows that are not due."""
        async with self._query(
            "SELECT min(next_attempt_at) FROM outbox o WHERE status = 'pending' AND next_attempt_at > :now "
            f"AND {_OUTBOX_FILTER} AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.status = 'pending' "
            "AND e.channel = o.channel AND e.chat_id = o.chat_id AND e.id < o.id)",
            {"now": now, **_outbox_filter_args(channels, skip)},
        ) as cur:
            return (await cur.fetchone())[0]

    async def renew_outbox(self, ids: list[int], lease_seconds: float) -> int:
        """Extend this worker's lease on the pending rows `ids` to `lease_seconds` from now, where it
        still holds them and the lease has not run out (a row whose lease ran out may be another
        worker's already); how many it renewed."""
        ids, now = list(ids), time.time()
        if not ids:
            return 0
        marks = ",".join("?" * len(ids))
        return await self._tx(lambda conn: conn.execute(
            f"UPDATE outbox SET next_attempt_at = ? WHERE status = 'pending' AND leased_by = ? "
            f"AND next_attempt_at > ? AND id IN ({marks})", (now + lease_seconds, self.worker, now, *ids)).rowcount)

    async def outbox_sent(self, item: OutboxItem, message_id: str | None) -> bool:
        """Mark a row sent, if this worker still holds it (False: another worker does, or it is no
        longer pending); remember a staff notification either way, so replies and buttons find
        their target (the message was sent)."""
        bind = item.payload.get("bind")

        def run(conn) -> bool:
            held = conn.execute(
                "UPDATE outbox SET status = 'sent', sent_at = ?, sent_message_id = ?, leased_by = NULL, "
                "attempts = attempts + 1 WHERE id = ? AND status = 'pending' AND leased_by = ?",
                (time.time(), message_id, item.id, self.worker)).rowcount == 1
            if bind and message_id is not None:
                conn.execute("INSERT OR REPLACE INTO staff_messages (channel, chat_id, message_id, kind, target, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                             (item.channel, item.chat_id, str(message_id), bind["kind"], bind["target"], time.time()))
            return held

        return await self._tx(run)

    async def release_outbox(self, channel: str | None, ids: list[int] | None = None) -> int:
        """End leases now: of the given rows this worker holds, or (ids None, at start-up) every lease
        this worker holds on the channel's rows (None: on any channel), since no sender of this
        process holds one yet. Returns the rows released."""
        now = time.time()
        if ids is None:
            return await self._tx(lambda conn: conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, leased_by = NULL WHERE status = 'pending' "
                "AND (? IS NULL OR channel = ?) AND next_attempt_at > ? AND (leased_by = ? "
                "OR (leased_by IS NULL AND attempts = 0))", (now, channel, channel, now, self.worker)).rowcount)
        ids = list(ids)
        marks = ",".join("?" * len(ids))
        return await self._tx(lambda conn: conn.execute(
            "UPDATE outbox SET next_attempt_at = ?, leased_by = NULL WHERE status = 'pending' AND leased_by = ? "
            f"AND id IN ({marks})", (now, self.worker, *ids)).rowcount)

    async def outbox_failed(self, item: OutboxItem, error: str, retry_at: float | None) -> bool:
        """Record a failed attempt of a row this worker holds: retry at `retry_at`, or give up (status
        'failed') when None. False when it no longer holds the row (nothing recorded)."""
        outcome, args = ("status = 'failed'", ()) if retry_at is None else ("next_attempt_at = ?", (retry_at,))
        return await self._tx(lambda conn: conn.execute(
            f"UPDATE outbox SET {outcome}, attempts = attempts + 1, last_error = ?, leased_by = NULL "
            "WHERE id = ? AND status = 'pending' AND leased_by = ?", (*args, error[:500], item.id, self.worker)
        ).rowcount == 1)

    # -- named leases ----------------------------------------------------------------------

    async def hold_worker_id(self) -> None:
        """Nothing to hold: a SQLite file serves one `mia run` process."""

    async def take_lease(self, name: str, seconds: float, now: float | None = None) -> bool:
        """Hold the lease `name` (the weekly digest, the retention purge) for `seconds`: True when
        this worker holds it now (taken, or renewed), False while another worker's has not expired."""
        now = time.time() if now is None else now
        return await self._tx(lambda conn: conn.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "holder = excluded.holder, expires_at = excluded.expires_at "
            "WHERE leases.holder = excluded.holder OR leases.expires_at <= ? RETURNING holder",
            (name, self.worker, now + seconds, now)).fetchone() is not None)

    # -- webhook inbox ---------------------------------------------------------------------

    async def inbox_add(self, channel: str, key: str, chat_id: str, body: str) -> bool:
        """Keep a webhook update before answering 200; False for one already kept (a re-delivery)."""
        return await self._tx(lambda conn: conn.execute(
            "INSERT INTO inbox (channel, key, chat_id, body, received_at, worker) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (channel, key) DO NOTHING", (channel, key, chat_id, body, time.time(), self.worker)).rowcount == 1)

    async def inbox_pending(self, channel: str, chat_id: str | None = None, received_before: float | None = None,
                            limit: int = 500, mine: bool = False) -> list[tuple[int, str, str]]:
        """Kept updates not yet handled, (id, chat id, body) in the order they arrived; of one chat,
        received before a time (the ones a worker that died left behind), or kept by this worker."""
        mine_only = self.worker if mine else None
        async with self._query(
            "SELECT id, chat_id, body FROM inbox WHERE processed_at IS NULL AND channel = ? "
            "AND (? IS NULL OR chat_id = ?) AND (? IS NULL OR received_at < ?) AND (? IS NULL OR worker = ?) "
            "ORDER BY id LIMIT ?",
            (channel, chat_id, chat_id, received_before, received_before, mine_only, mine_only, limit)) as cur:
            return [(r[0], r[1], r[2]) for r in await cur.fetchall()]

    async def inbox_done(self, row_id: int, error: str | None = None) -> None:
        """A kept update was handled (or failed for good, with the error)."""
        await self._tx(lambda conn: conn.execute(
            "UPDATE inbox SET processed_at = ?, error = ? WHERE id = ?", (time.time(), error, row_id)))

    # -- hits counted for limits shared by workers --------------------------------------------

    async def count_hit(self, key: str, window_start: float, window: float) -> tuple[int, int]:
        """Count one hit of `key` in the window starting at `window_start`; (hits in it so far, hits in
        the window before). Now and then the windows older than those two go."""
        def run(conn) -> tuple[int, int]:
            if random.random() < SWEEP_CHANCE:
                conn.execute("DELETE FROM hits WHERE window_start < ?", (window_start - window,))
            now = conn.execute(
                "INSERT INTO hits (key, window_start, count) VALUES (?, ?, 1) ON CONFLICT (key, window_start) "
                "DO UPDATE SET count = count + 1 RETURNING count", (key, window_start)).fetchone()[0]
            before = conn.execute("SELECT count FROM hits WHERE key = ? AND window_start = ?",
                                  (key, window_start - window)).fetchone()
            return now, before[0] if before else 0

        return await self._tx(run)
