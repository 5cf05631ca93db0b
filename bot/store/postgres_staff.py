"""The staff desk's part of the PostgreSQL store: accounts, sign-in links, sessions and the desk's notices."""

from __future__ import annotations

import json
import time

from bot.store.postgres_unit import _changed


class PostgresStaffDeskTables:
    """Mixed into PostgresStore: uses its `_tx` (one transaction) and `_pool` (committed reads)."""

    async def add_staff(self, name: str, office: str, link_hash: str, link_expires_at: float) -> bool:
        """A new account with its sign-in link; False when the name is taken."""
        async with self._tx() as conn:
            return await conn.fetchval(
                "INSERT INTO staff_accounts (name, office, link_hash, link_expires_at, created_at) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING RETURNING id",
                name, office, link_hash, link_expires_at, time.time()) is not None

    async def renew_staff_link(self, name: str, link_hash: str, link_expires_at: float) -> bool:
        """A fresh sign-in link for an account (the old one stops working); False for no such name."""
        async with self._tx() as conn:
            return _changed(await conn.execute(
                "UPDATE staff_accounts SET link_hash = $1, link_expires_at = $2 WHERE name = $3",
                link_hash, link_expires_at, name)) > 0

    async def list_staff(self) -> list[dict]:
        rows = await self._read().fetch(
            "SELECT a.id, a.name, a.office, a.created_at, (SELECT max(s.expires_at) FROM staff_sessions s "
            "WHERE s.account_id = a.id) FROM staff_accounts a ORDER BY a.office, a.name")
        return [{"id": r[0], "name": r[1], "office": r[2], "created_at": r[3], "session_until": r[4]} for r in rows]

    async def remove_staff(self, name: str) -> bool:
        async with self._tx() as conn:
            account = await conn.fetchval("SELECT id FROM staff_accounts WHERE name = $1 FOR UPDATE", name)
            if account is None:
                return False
            await conn.execute("DELETE FROM staff_sessions WHERE account_id = $1", account)
            await conn.execute("DELETE FROM staff_accounts WHERE id = $1", account)
            return True

    async def staff_offices(self) -> list[str]:
        return [r[0] for r in await self._read().fetch("SELECT DISTINCT office FROM staff_accounts ORDER BY office")]

    async def redeem_staff_link(self, link_hash: str, now: float) -> dict | None:
        # One statement: of two sign-ins with the same link at the same moment, one gets the account.
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "UPDATE staff_accounts SET link_hash = NULL, link_expires_at = NULL WHERE link_hash = $1 "
                "AND link_expires_at > $2 RETURNING id, name, office", link_hash, now)
        return {"id": row[0], "name": row[1], "office": row[2]} if row else None

    async def create_staff_session(self, session_hash: str, account_id: int, csrf: str, expires_at: float) -> None:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM staff_sessions WHERE expires_at < $1", time.time())
            await conn.execute("INSERT INTO staff_sessions (session_hash, account_id, csrf, created_at, expires_at) "
                               "VALUES ($1, $2, $3, $4, $5)", session_hash, account_id, csrf, time.time(), expires_at)

    async def staff_session(self, session_hash: str, now: float) -> dict | None:
        row = await self._read().fetchrow(
            "SELECT a.id, a.name, a.office, s.csrf FROM staff_sessions s JOIN staff_accounts a ON a.id = s.account_id "
            "WHERE s.session_hash = $1 AND s.expires_at > $2", session_hash, now)
        return {"id": row[0], "name": row[1], "office": row[2], "csrf": row[3]} if row else None

    async def end_staff_session(self, session_hash: str) -> None:
        async with self._tx() as conn:
            await conn.execute("DELETE FROM staff_sessions WHERE session_hash = $1", session_hash)

    async def desk_notices(self, office: str, threads: int = 200) -> list[dict]:
        rows = await self._read().fetch(DESK_NOTICES, office, threads)
        return [{"id": r[0], "message_id": r[1], "kind": r[2], "target": r[3], "payload": json.loads(r[4]),
                 "at": r[5]} for r in rows]


# The desk's threads: the office's most recently active ones, and every request still waiting for staff.
DESK_NOTICES = """
    WITH notices AS (
        SELECT o.id, o.sent_message_id, m.kind, m.target, o.payload, o.sent_at FROM outbox o
        JOIN staff_messages m ON m.channel = o.channel AND m.chat_id = o.chat_id AND m.message_id = o.sent_message_id
        WHERE o.channel = 'desk' AND o.chat_id = $1 AND o.status = 'sent'),
    recent AS (SELECT kind, target FROM notices GROUP BY kind, target ORDER BY MAX(id) DESC LIMIT $2),
    pending AS (SELECT 'request' AS kind, ref AS target FROM callback_requests
                WHERE office = $1 AND status IN ('open', 'claimed'))
    SELECT * FROM notices WHERE (kind, target) IN (SELECT * FROM recent) OR (kind, target) IN (SELECT * FROM pending)
    ORDER BY id"""
