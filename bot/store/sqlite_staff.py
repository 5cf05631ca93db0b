"""The staff desk's part of the SQLite store: accounts, sign-in links, sessions and the desk's notices."""

from __future__ import annotations

import json
import time


class StaffDeskTables:
    """Mixed into SQLiteStore: uses its `_tx` (one transaction) and `_query` (a committed read)."""

    async def add_staff(self, name: str, office: str, link_hash: str, link_expires_at: float) -> bool:
        """A new account with its sign-in link; False when the name is taken."""
        def run(conn) -> bool:
            return conn.execute(
                "INSERT INTO staff_accounts (name, office, link_hash, link_expires_at, created_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING id",
                (name, office, link_hash, link_expires_at, time.time())).fetchone() is not None

        return await self._tx(run)

    async def renew_staff_link(self, name: str, link_hash: str, link_expires_at: float) -> bool:
        """A fresh sign-in link for an account (the old one stops working); False for no such name."""
        def run(conn) -> bool:
            return conn.execute("UPDATE staff_accounts SET link_hash = ?, link_expires_at = ? WHERE name = ?",
                                (link_hash, link_expires_at, name)).rowcount > 0

        return await self._tx(run)

    async def list_staff(self) -> list[dict]:
        async with self._query(
            "SELECT a.id, a.name, a.office, a.created_at, (SELECT max(s.expires_at) FROM staff_sessions s "
            "WHERE s.account_id = a.id) FROM staff_accounts a ORDER BY a.office, a.name") as cur:
            return [{"id": r[0], "name": r[1], "office": r[2], "created_at": r[3], "session_until": r[4]}
                    for r in await cur.fetchall()]

    async def remove_staff(self, name: str) -> bool:
        def run(conn) -> bool:
            row = conn.execute("SELECT id FROM staff_accounts WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM staff_sessions WHERE account_id = ?", (row[0],))
            conn.execute("DELETE FROM staff_accounts WHERE id = ?", (row[0],))
            return True

        return await self._tx(run)

    async def staff_offices(self) -> list[str]:
        async with self._query("SELECT DISTINCT office FROM staff_accounts ORDER BY office") as cur:
            return [r[0] for r in await cur.fetchall()]

    async def redeem_staff_link(self, link_hash: str, now: float) -> dict | None:
        def run(conn):
            row = conn.execute("SELECT id, name, office FROM staff_accounts WHERE link_hash = ? AND "
                               "link_expires_at > ?", (link_hash, now)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE staff_accounts SET link_hash = NULL, link_expires_at = NULL WHERE id = ?", (row[0],))
            return {"id": row[0], "name": row[1], "office": row[2]}

        return await self._tx(run)

    async def create_staff_session(self, session_hash: str, account_id: int, csrf: str, expires_at: float) -> None:
        def run(conn):
            conn.execute("DELETE FROM staff_sessions WHERE expires_at < ?", (time.time(),))
            conn.execute("INSERT INTO staff_sessions (session_hash, account_id, csrf, created_at, expires_at) "
                         "VALUES (?, ?, ?, ?, ?)", (session_hash, account_id, csrf, time.time(), expires_at))

        await self._tx(run)

    async def staff_session(self, session_hash: str, now: float) -> dict | None:
        async with self._query(
            "SELECT a.id, a.name, a.office, s.csrf FROM staff_sessions s JOIN staff_accounts a ON a.id = s.account_id "
            "WHERE s.session_hash = ? AND s.expires_at > ?", (session_hash, now)) as cur:
            row = await cur.fetchone()
        return {"id": row[0], "name": row[1], "office": row[2], "csrf": row[3]} if row else None

    async def end_staff_session(self, session_hash: str) -> None:
        await self._tx(lambda conn: conn.execute("DELETE FROM staff_sessions WHERE session_hash = ?",
                                                 (session_hash,)))

    async def desk_notices(self, office: str, threads: int = 200) -> list[dict]:
        async with self._query(DESK_NOTICES, {"office": office, "threads": threads}) as cur:
            rows = await cur.fetchall()
        return [{"id": r[0], "message_id": r[1], "kind": r[2], "target": r[3], "payload": json.loads(r[4]),
                 "at": r[5]} for r in rows]


# The desk's threads: the office's most recently active ones, and every request still waiting for staff.
DESK_NOTICES = """
    WITH notices AS (
        SELECT o.id, o.sent_message_id, m.kind, m.target, o.payload, o.sent_at FROM outbox o
        JOIN staff_messages m ON m.channel = o.channel AND m.chat_id = o.chat_id AND m.message_id = o.sent_message_id
        WHERE o.channel = 'desk' AND o.chat_id = :office AND o.status = 'sent'),
    recent AS (SELECT kind, target FROM notices GROUP BY kind, target ORDER BY MAX(id) DESC LIMIT :threads),
    pending AS (SELECT 'request' AS kind, ref AS target FROM callback_requests
                WHERE office = :office AND status IN ('open', 'claimed'))
    SELECT * FROM notices WHERE (kind, target) IN (SELECT * FROM recent) OR (kind, target) IN (SELECT * FROM pending)
    ORDER BY id"""
