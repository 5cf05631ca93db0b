"""The weekly digest: the most frequent unanswered questions, with buttons to teach MIA."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from bot.content.editing import EditError, add_example, restore
from bot.core.messages import DIGEST, Button, Reply, to_payload
from bot.core.privacy import example_text
from bot.content.review import describe, groups_to_review, suggest
from bot.core.tasks import BackgroundTask

log = logging.getLogger(__name__)
LEASE_SECONDS = 600.0  # how long a worker sending the digest holds it against the others
TOP = 5
WEEK = 7 * 86400
STALE_DAYS = 365  # facts whose newest source is older than this are listed for checking
STALE_SHOWN = 10


class Digest:
    """Builds the digest, and carries out the operators' decisions on it."""

    def __init__(self, store, reloader, content_holder, notify_payload, operator_chat: str | None,
                 weekday: int = 0, hour: int = 8):
        self.store = store
        self.reloader = reloader
        self.holder = content_holder  # the assistant: its `content` is the live snapshot
        self.notify_payload = notify_payload  # async callable(payload) -> queued to the operators' chat
        self.operator_chat = operator_chat
        self.weekday = weekday
        self.hour = hour
        self._task = BackgroundTask("digest", self._run)

    async def send(self, now: float | None = None) -> int:
        """Queue the digest for the operators' chat; returns the number of groups in it."""
        now = time.time() if now is None else now
        await self._send_stale_facts(dt.date.fromtimestamp(now))
        content = self.holder.content
        rows = await self.store.review_items(since=now - WEEK)
        groups = await asyncio.to_thread(groups_to_review, rows, content)
        groups = groups[:TOP]
        titles = {it.id: it.title["id"] for it in content.intents.intents}
        if not groups:
            await self.notify_payload(to_payload(Reply("Ringkasan mingguan MIA: tidak ada pertanyaan yang tak "
                                                       "terjawab minggu ini.")))
            return 0
        await self.notify_payload(to_payload(Reply(
            f"Ringkasan mingguan MIA: {len(groups)} kelompok pertanyaan yang paling sering tidak terjawab, dipilih "
            "dari menu, atau dinilai tidak membantu. Pilih tindakan di bawah tiap pertanyaan.")))
        for g in groups:
            suggestion = suggest(g, content)
            candidates = [suggestion.intent] if suggestion.intent else []
            candidates += [c for c, _ in g.nearest.most_common(3) if c not in candidates]
            item = await self.store.add_digest_item(g.example, g.count, candidates[:3], [r["id"] for r in g.rows])
            buttons = []
            if candidates:
                buttons.append(Button(f"Tambah ke {titles.get(candidates[0], candidates[0])}"[:40], f"add:{item}:0",
                                      DIGEST))
            buttons += [Button("Intent lain", f"pick:{item}", DIGEST), Button("Abaikan", f"ign:{item}", DIGEST)]
            await self.notify_payload(to_payload(Reply(f"{g.count}x ({describe(g)}): \"{g.example}\"\n"
                                                       f"Saran: {candidates[0] if candidates else '-'}",
                                                       tuple(buttons))))
        return len(groups)

    async def _send_stale_facts(self, today: dt.date) -> None:
        """Facts last confirmed more than a year ago: the operators should check them."""
        stale = [r for r in self.holder.content.knowledge.facts_by_age(today) if r.days > STALE_DAYS]
        if not stale:
            return
        lines = [f"- {r.fact.as_of.isoformat()} ({r.days // 30} bulan): data/{r.file}: {r.name}, sumber {r.fact.cite}"
                 for r in stale[:STALE_SHOWN]]
        more = f"\n...dan {len(stale) - STALE_SHOWN} lainnya (mia facts)." if len(stale) > STALE_SHOWN else ""
        await self.notify_payload(to_payload(Reply(f"Fakta yang perlu dicek ulang ({len(stale)} terakhir dikonfirmasi "
                                                   "lebih dari 12 bulan lalu; terlama dulu):\n" + "\n".join(lines)
                                                   + more)))

    async def decide(self, data: str, by: str) -> str:
        """Carry out a digest button's action ("add:ID:N", "to:ID:INTENT", "pick:ID", "ign:ID")."""
        parts = ["dg", *data.split(":")]
        if len(parts) < 3 or not (parts[2].isascii() and parts[2].isdigit()):
            return "Tombol tidak dikenal."
        item = await self.store.digest_item(int(parts[2]))
        if item is None:
            return "Pertanyaan ini tidak ditemukan."
        if item["status"] != "open":
            return "Pertanyaan ini sudah diputuskan."
        action = parts[1]
        if action == "ign":
            await self.store.decide_digest_item(item["id"], "ignored", by)
            await self.store.decide_review(item.get("review_ids", []), "dropped", None, by)
            return f"Diabaikan: \"{item['example']}\"."
        if action == "pick":
            intents = [it.id for it in self.holder.content.intents.intents]
            buttons = tuple(Button(i, f"to:{item['id']}:{i}", DIGEST) for i in intents)
            await self.notify_payload(to_payload(Reply(f"Pilih intent untuk \"{item['example']}\":", buttons)))
            return "Pilih intentnya di pesan berikut."
        if action == "add" and len(parts) == 4 and parts[3].isascii() and parts[3].isdigit() \
                and int(parts[3]) < len(item["candidates"]):
            intent = item["candidates"][int(parts[3])]
        elif action == "to" and len(parts) == 4:
            intent = parts[3]
        else:
            return "Tombol tidak dikenal."
        return await self._add(item, intent, by)

    async def _add(self, item: dict, intent: str, by: str) -> str:
        text = example_text(item["example"])  # names and numbers were masked; their placeholders stay out
        try:
            path, original = await asyncio.to_thread(add_example, self.reloader.root / "intents", intent, text)
        except EditError as exc:
            return f"Tidak ditambahkan: {exc}."
        result = await self.reloader.reload(f"contoh baru untuk {intent}")
        if not result.ok:
            await asyncio.to_thread(restore, path, original)
            await self.reloader.reload("membatalkan contoh yang ditolak")
            return f"Tidak ditambahkan: contoh itu membuat konten gagal diperiksa. {result.message[:300]}"
        await self.store.decide_digest_item(item["id"], f"added:{intent}", by)
        await self.store.decide_review(item.get("review_ids", []), "confirmed", intent, by)
        await self.store.add_confirmed_example(text, intent, by)
        return f"Ditambahkan ke {intent}: \"{text}\". Konten baru sudah aktif."

    def due(self, now: float, last_sent: float | None) -> bool:
        """True at the configured weekday and hour, once a week."""
        local = dt.datetime.fromtimestamp(now)
        if local.weekday() != self.weekday or local.hour != self.hour:
            return False
        return last_sent is None or now - last_sent > 6 * 86400

    def start(self) -> None:
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _run(self) -> None:
        while True:
            try:
                now = time.time()
                last = await self.store.get_meta("digest_last_sent")
                # Several workers on one database: the one holding the lease sends it, once.
                if (self.operator_chat and self.due(now, float(last) if last else None)
                        and await self.store.take_lease("weekly-digest", LEASE_SECONDS)):
                    await self.send(now)
                    await self.store.set_meta("digest_last_sent", str(now))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the schedule must survive one failure
                log.exception("weekly digest failed")
            await asyncio.sleep(60)
