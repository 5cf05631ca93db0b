"""The staff desk on the web (/staff on the web port): handoffs, Lapor Rakit requests and complaints
of one office, with claim, reply and close, for offices without a Telegram staff group (or beside it).

Staff sign in with a one-time link (`mia staff add NAME --office ID`); the session is a random
key in an HttpOnly, SameSite=Strict cookie whose hash the store keeps; every action is JSON from
this site with the session's CSRF token, and goes through the same StaffDesk as the Telegram
staff chats. A staff member sees and acts on their own office's work only.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import re
import secrets
import time
import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.channels.http import BodyTooLarge, is_unicode, read_body, same_secret
from bot.content.checks import check_content
from bot.content.review import confirm, describe, drop, groups_to_review, suggest
from bot.core.flows.state import HANDOFF_KEY
from bot.core.messages import reply_of
from bot.runtime.staff import StaffDesk, StaffEvent

CHANNEL = "desk"
COOKIE = "mia_staff"
SESSION_SECONDS = 12 * 3600  # a working day; then the link or `mia staff link` again
LINK_SECONDS = 24 * 3600  # a sign-in link works once, within a day
MAX_BODY = 8_000
MAX_REPLY = 3000
STATIC = Path(__file__).resolve().parent / "web_static"
_TAGS = re.compile(r"<[^>]+>")
ACTIONS = {"claim", "done", "reply", "end"}
OPERATORS = "operators"  # `mia staff add NAME --office operators`: the review queue, no office's citizens
REVIEW_DAYS = 30
TELEGRAM_INSTRUCTION = "Balas (reply) pesan ini untuk "  # how the staff templates' last line begins


def token_hash(token: str) -> str:
    """What the store keeps of a sign-in link or a session key: never the key itself."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_link_token() -> str:
    return secrets.token_urlsafe(24)


def plain(staff_html: str) -> str:
    """A staff notice (Telegram HTML, every value escaped) as plain text for the page's textContent,
    without the Telegram group's instruction (the desk has its own buttons): the last line of
    responses/id/staff_{handoff,request,citizen_message}.j2, after the citizen's words, which stay
    whatever they say."""
    lines = html.unescape(_TAGS.sub("", staff_html)).strip().splitlines()
    if lines and lines[-1].startswith(TELEGRAM_INSTRUCTION):
        lines.pop()
    return "\n".join(lines).strip()


class DeskSender:
    """Outbox rows to ("desk", office) are notices the desk page shows: delivered at once, with an id."""

    async def send(self, chat_id: str, payload: dict) -> str | None:
        return payload.get("edit") or uuid.uuid4().hex[:16]


class DeskChannel:
    """The desk's routes (served by the app's web server) and its sender."""

    name = CHANNEL

    def __init__(self, store, staff: StaffDesk, secure_cookie: bool = False, allowed_origins: tuple[str, ...] = (),
                 on_queue=None, content_dir: Path | None = None, reload=None):
        self.store = store
        self.content_dir = content_dir  # operators' review: where intents/ is
        self.reload = reload  # async callable(reason): a confirmed example goes live at once
        self.staff = staff
        self.sender = DeskSender()
        self.secure_cookie = secure_cookie
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.on_queue = on_queue

    async def start(self) -> None:
        """Nothing to start: the web server serves `routes()`."""

    async def stop(self) -> None:
        """Nothing to stop."""

    def routes(self) -> list[Route]:
        return [
            Route("/staff", self.page),
            Route("/staff/masuk", self.sign_in, methods=["GET", "POST"]),
            Route("/staff/desk.js", self.asset),
            Route("/staff/desk.css", self.asset),
            Route("/staff/api/queue", self.queue),
            Route("/staff/api/act", self.act, methods=["POST"]),
            Route("/staff/api/keluar", self.sign_out, methods=["POST"]),
            Route("/staff/api/review", self.review, methods=["GET", "POST"]),
        ]

    # -- session ----------------------------------------------------------------------------

    async def _who(self, request: Request) -> dict | None:
        """The signed-in staff member ({id, name, office, csrf}), or None."""
        key = request.cookies.get(COOKIE, "")
        if not (20 <= len(key) <= 100):
            return None
        return await self.store.staff_session(token_hash(key), time.time())

    def _refused_write(self, request: Request, who: dict | None) -> Response | None:
        """A write needs a session, JSON, this site's Origin and the session's CSRF token."""
        if who is None:
            return JSONResponse({"error": "masuk dulu / sign in first"}, status_code=401)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return JSONResponse({"error": "Permintaan harus berupa JSON; muat ulang halaman. / "
                                          "The request must be JSON; reload the page."}, status_code=415)
        if not self._from_this_site(request):
            return JSONResponse({"error": "Permintaan dari situs lain ditolak. / "
                                          "A request from another site is refused."}, status_code=403)
        if not same_secret(request.headers.get("x-csrf-token", ""), who["csrf"]):
            return JSONResponse({"error": "Sesi ini sudah tidak berlaku; muat ulang halaman. / "
                                          "This session is no longer valid; reload the page."}, status_code=403)
        return None

    def _from_this_site(self, request: Request) -> bool:
        """The request names this site (or an allowed one) as its Origin."""
        origin = (request.headers.get("origin") or "").rstrip("/").lower()
        host = request.headers.get("host", "").lower()
        return bool(origin) and (origin in self.allowed_origins or origin.split("://", 1)[-1] == host)

    async def _write_body(self, request: Request, who: dict | None) -> dict | Response:
        """The JSON object a write carries, or the refusal to send (see _refused_write; 413 for too
        large, 400 for bad JSON or text that cannot be stored, such as a lone surrogate "\\ud800")."""
        refused = self._refused_write(request, who)
        if refused is not None:
            return refused
        try:
            data = json.loads(await read_body(request, MAX_BODY) or b"{}")
            storable = is_unicode(json.dumps(data, ensure_ascii=False))
        except BodyTooLarge:
            return JSONResponse({"error": "Permintaan terlalu besar. / The request is too large."}, status_code=413)
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            data, storable = None, False
        if not isinstance(data, dict) or not storable:
            return JSONResponse({"error": "Permintaan tidak dapat dibaca; muat ulang halaman. / "
                                          "The request could not be read; reload the page."}, status_code=400)
        return data

    # -- routes -----------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        """The desk page; without a session it shows only how to sign in (its script asks the API)."""
        return FileResponse(STATIC / "desk.html", headers={"Cache-Control": "no-store"})

    async def asset(self, request: Request) -> Response:
        return FileResponse(STATIC / request.url.path.rsplit("/", 1)[-1], headers={"Cache-Control": "no-cache"})

    async def sign_in(self, request: Request) -> Response:
        """A one-time link. Opening it (GET, as a chat app's link preview or a link scanner also does)
        only shows a "Masuk" button; the button's post from this site spends the token, sets the
        session cookie and opens the desk."""
        if request.method == "GET":
            return await self.page(request)
        if not self._from_this_site(request):  # another site's form: the link is not spent
            return PlainTextResponse("Masuk ditolak: buka tautan masuk langsung di browser. / "
                                     "Sign-in refused: open the sign-in link in the browser itself.", status_code=403)
        token = request.query_params.get("t", "")
        account = await self.store.redeem_staff_link(token_hash(token), time.time()) if 20 <= len(token) <= 100 \
            else None
        if account is None:
            return RedirectResponse("/staff?link=invalid", status_code=303)
        key = secrets.token_urlsafe(32)
        await self.store.create_staff_session(token_hash(key), account["id"], secrets.token_urlsafe(24),
                                              time.time() + SESSION_SECONDS)
        response = RedirectResponse("/staff", status_code=303)
        response.set_cookie(COOKIE, key, max_age=SESSION_SECONDS, httponly=True, samesite="strict",
                            secure=self.secure_cookie, path="/staff")
        return response

    async def sign_out(self, request: Request) -> Response:
        who = await self._who(request)
        refused = self._refused_write(request, who)
        if refused is not None:
            return refused
        await self.store.end_staff_session(token_hash(request.cookies.get(COOKIE, "")))
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, path="/staff")
        return response

    async def queue(self, request: Request) -> Response:
        """The office's work: threads (one per request or conversation) newest activity first,
        the number waiting and the oldest wait."""
        who = await self._who(request)
        if who is None:
            return JSONResponse({"error": "masuk dulu / sign in first"}, status_code=401,
                                headers={"Cache-Control": "no-store"})
        office = who["office"]
        if office == OPERATORS:  # operators see the review, no citizen's conversation
            return JSONResponse({"office": OPERATORS, "operators": True, "csrf": who["csrf"], "staff": who["name"]},
                                headers={"Cache-Control": "no-store"})
        threads: dict[tuple[str, str], dict] = {}
        for row in await self.store.desk_notices(office):
            if row["payload"].get("edit"):
                continue  # a Telegram-style edit of a request notice: the desk reads the request's status
            key = (row["kind"], row["target"])
            thread = threads.setdefault(key, {"kind": row["kind"], "target": row["target"], "items": [],
                                              "reply_to": row["message_id"], "first_at": row["at"]})
            reply = reply_of(row["payload"])
            thread["items"].append({"text": plain(reply.text) if reply.html else reply.text, "at": row["at"],
                                    "staff": bool(row["payload"].get("desk_note"))})
            thread["last_at"] = row["at"]
            if not row["payload"].get("desk_note"):
                thread["reply_to"] = row["message_id"]  # a reply answers the latest notice
        requests = {r.ref: r for r in await self.store.list_requests(office=office)}
        now = time.time()
        waiting = []
        for thread in threads.values():
            request = requests.get(thread["target"]) if thread["kind"] == "request" else None
            if request is not None:
                thread["status"] = request.status
                thread["claimed_by"] = request.claimed_by
                thread["channel"] = request.channel
            else:
                thread["status"] = await self._handoff_status(thread["target"], office)
                thread["channel"] = thread["target"].split(":", 1)[0]
            # Waiting: a request nobody took yet, a conversation whose last word is the citizen's.
            if thread["status"] == "open" or (thread["status"] == "active" and not thread["items"][-1]["staff"]):
                waiting.append(thread["first_at"])
        ordered = sorted(threads.values(), key=lambda t: (t["status"] in ("done", "ended"), -t["last_at"]))
        body = {"office": office, "office_name": self._office_name(office), "staff": who["name"],
                "csrf": who["csrf"], "waiting": len(waiting),
                "oldest_wait_seconds": round(now - min(waiting)) if waiting else 0, "threads": ordered}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def act(self, request: Request) -> Response:
        """claim / done (a request), reply / end (a conversation), as the Telegram staff chat does."""
        who = await self._who(request)
        data = await self._write_body(request, who)
        if isinstance(data, Response):
            return data
        action = data.get("action")
        if action not in ACTIONS:
            return JSONResponse({"error": "Tindakan tidak dikenal. / Unknown action."}, status_code=400)
        text = str(data.get("text") or "").strip()[:MAX_REPLY]
        if action == "reply" and not text:
            return JSONResponse({"error": "tulis balasannya dulu / write the reply first"}, status_code=400)
        event = StaffEvent(CHANNEL, who["office"], f"desk-{uuid.uuid4().hex}", f"desk:{who['id']}", who["name"],
                           action, ref=str(data.get("ref") or "")[:40], reply_to=str(data.get("reply_to") or "")[:40],
                           text=text)
        result = await self.staff.handle(event)
        return JSONResponse({"ok": result.ok, "message": result.text}, status_code=200 if result.ok else 409)

    # -- the operators' review ---------------------------------------------------------------

    async def review(self, request: Request) -> Response:
        """Operators: what citizens asked that MIA did not understand, chose in a menu or said did not
        help, grouped with MIA's suggestion (GET); add a group's example to an intent, or drop it (POST)."""
        who = await self._who(request)
        if who is None:
            return JSONResponse({"error": "masuk dulu / sign in first"}, status_code=401)
        if who["office"] != OPERATORS:
            return JSONResponse({"error": "hanya untuk operator MIA / operators only"}, status_code=403)
        content = self.staff.content
        if request.method == "GET":
            groups = await self._groups(content)
            titles = {it.id: it.title["id"] for it in content.intents.intents}
            body = {"office": OPERATORS, "office_name": "Operator MIA", "staff": who["name"], "csrf": who["csrf"],
                    "intents": sorted(titles.items(), key=lambda kv: kv[1]), "groups": []}
            for g in groups:
                hint = suggest(g, content)
                body["groups"].append({"key": g.rows[0]["id"], "example": g.example, "count": g.count,
                                       "why": describe(g), "suggestion": hint.intent,
                                       "suggestion_title": titles.get(hint.intent), "texts": g.texts[:5]})
            return JSONResponse(body, headers={"Cache-Control": "no-store"})
        data = await self._write_body(request, who)
        if isinstance(data, Response):
            return data
        group = next((g for g in await self._groups(content) if g.rows[0]["id"] == data.get("key")), None)
        if group is None:
            return JSONResponse({"ok": False, "message": "Kelompok ini sudah diputuskan."}, status_code=409)
        by = f"desk:{who['name']}"
        if data.get("action") == "drop":
            return JSONResponse({"ok": True, "message": await drop(self.store, group, by)})
        intent = data.get("intent")
        if data.get("action") != "add" or intent not in content.intents.ids:
            return JSONResponse({"error": "Tindakan atau intent tidak dikenal. / Unknown action or intent."},
                                status_code=400)
        said = await confirm(self.store, self.content_dir, group, intent, by,
                             lambda root: check_content(root, cross_validate=False))
        if said.startswith("Added") and self.reload is not None:
            await self.reload(f"contoh baru dari meja operator untuk {intent}")
        return JSONResponse({"ok": said.startswith("Added"), "message": said},
                            status_code=200 if said.startswith("Added") else 409)

    async def _groups(self, content):
        rows = await self.store.review_items(since=time.time() - REVIEW_DAYS * 86400)
        return await asyncio.to_thread(groups_to_review, rows, content)

    async def _handoff_status(self, target: str, office: str) -> str:
        """"active" while this office's staff have the conversation, else "ended" (also when the
        citizen has since been handed to another office)."""
        channel, _, chat_id = target.partition(":")
        async with self.store.unit() as unit:
            state = await unit.load_state(channel, chat_id)
        handoff = state.data.get(HANDOFF_KEY) or {}
        return "active" if handoff.get("office") == office else "ended"

    def _office_name(self, office: str) -> str:
        found = self.staff.content.knowledge.office(office)
        return found.name if found is not None else office
