"""The local web chat: a small page and a JSON API (Starlette), on the same pipeline and store."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from bot.core.assistant import Assistant
from bot.core.turn import Outcome
from bot.channels.http import BodyTooLarge, is_unicode, read_body
from bot.channels.limits import STORE_FULL, TOO_MANY, RateLimiter, SharedRateLimiter, StoreGuard, client_address
from bot.core.flows.state import HANDOFF_KEY
from bot.core.messages import Incoming, Reply, reply_of

log = logging.getLogger(__name__)

CHANNEL = "web"
COOKIE = "mia_session"
STATIC = Path(__file__).resolve().parent / "web_static"
MAX_BODY = 16 * 1024  # bytes of one API request
MAX_TEXT = 4000  # characters of one message
TARPIT_SECONDS = 1.0  # how long a refusal for too many requests is held back
TARPIT_MAX_HELD = 64  # refusals held at once per address; past it they leave at once...
TARPIT_MAX_TOTAL = 256  # ...and from all addresses together (each held request costs memory)
READ_ROWS = 200  # transcript rows one read returns; the page asks again for the rest
FULL_STORE_SESSION_BYTES = 64 * 1024  # past the store's size limit, a conversation may grow to this, no more


SECRET_META = "web_session_secret"
LEAVE_HANDOFF = "kembali ke bot"  # what a citizen says to leave an officer's conversation (flows/handoff.py)


def session_chat(key: str) -> str:
    """The conversation id of a session key: a hash, so neither the database nor the staff chat
    (which shows it) holds anything that works as the cookie."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Session:
    key: str  # the cookie: a random nonce and its signature, known to the browser only
    chat: str  # the conversation id everything else uses
    new: bool  # issued by this response


def _buttons(reply: Reply) -> list[dict]:
    """The buttons the page shows: what a citizen may press (staff actions never reach a citizen)."""
    return [{"title": b.title, "payload": b.payload, "kind": b.kind} for b in reply.buttons if b.says]


class WebSender:
    """Outbox sender for the web chat: staff replies and request news join the transcript."""

    def __init__(self, store):
        self.store = store

    async def send(self, chat_id: str, payload: dict) -> str | None:
        reply = reply_of(payload)
        async with self.store.unit() as unit:
            return str(await unit.add_web_message(chat_id, "bot", reply.text, _buttons(reply)))


class WebChannel:
    """Serves the page and the API; the session key lives in an HttpOnly cookie. Its routes are
    served by the app's WebServer (with WhatsApp's webhook), so start and stop have nothing to do."""

    name = "web"

    def __init__(self, assistant: Assistant, secure_cookie: bool = False, new_sessions_per_minute: int = 0,
                 posts_per_minute: int = 0, trusted_proxies: tuple = (), guard: StoreGuard | None = None,
                 reads_per_minute: int = 0, allowed_origins: tuple[str, ...] = (), shared_limits: bool = False):
        self.assistant = assistant
        self.secure_cookie = secure_cookie
        self.sender = WebSender(assistant.store)
        self._secret: bytes | None = None  # signs the session keys this server issues
        # Per client address: sessions issued, messages (and language changes) posted, transcript
        # reads; counted in the store when several workers share it.
        if shared_limits:
            self.new_sessions = SharedRateLimiter(assistant.store, "sessions", new_sessions_per_minute)
            self.posts = SharedRateLimiter(assistant.store, "posts", posts_per_minute)
            self.reads = SharedRateLimiter(assistant.store, "reads", reads_per_minute)
        else:
            self.new_sessions = RateLimiter(new_sessions_per_minute)
            self.posts = RateLimiter(posts_per_minute)
            self.reads = RateLimiter(reads_per_minute)
        # Sites whose pages may post to the API besides this server's own (e.g. its public https name).
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.trusted_proxies = tuple(trusted_proxies)
        self.guard = guard
        self._held: dict[str, int] = {}  # refusals being held back, per address
        self._held_total = 0
        self.tarpit_seconds = TARPIT_SECONDS

    async def start(self) -> None:
        """Nothing to start: the web server serves `app()`."""

    async def stop(self) -> None:
        """Nothing to stop: replies are written to the transcript in the answer's transaction."""

    def app(self, page: bool = True, extra_routes: list | None = None) -> Starlette:
        """The server's routes: the chat page and its API (when `page`), plus other channels' webhooks."""
        routes = [Route("/healthz", self.health)]
        if page:
            routes += [
                Route("/", self.page),
                Route("/api/messages", self.messages, methods=["GET", "POST"]),
                Route("/api/lang", self.set_lang, methods=["POST"]),
                Route("/api/new", self.new_conversation, methods=["POST"]),
                Mount("/static", StaticFiles(directory=STATIC), name="static"),
            ]
        return Starlette(routes=routes + list(extra_routes or []), middleware=[Middleware(SecurityHeaders)])

    # -- session --------------------------------------------------------------------------

    def address(self, request: Request) -> str:
        """The client's address: the peer's, or the one a trusted proxy forwarded. Every
        X-Forwarded-For line counts, in order (a proxy may add a line of its own instead of appending
        to the client's, and a client's forged line stands before it)."""
        forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
        return client_address(request.client.host if request.client else None, forwarded, self.trusted_proxies)

    def _cross_site(self, request: Request) -> Response | None:
        """A write must be JSON and come from this site: a page elsewhere can neither post a form
        (text/plain needs no preflight) nor script a JSON post (no CORS headers are ever sent).
        Clients that send no Origin (not browsers) are held by the per-address limits."""
        if int(request.headers.get("content-length") or 0) > MAX_BODY:  # too large is said first, whatever it is
            return JSONResponse({"error": "request too large"}, status_code=413)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return JSONResponse({"error": "content type must be application/json"}, status_code=415)
        origin = request.headers.get("origin")
        if origin is None:
            return None
        origin = origin.rstrip("/").lower()
        host = request.headers.get("host", "").lower()
        if origin in self.allowed_origins or origin.split("://", 1)[-1] == host:
            return None
        return JSONResponse({"error": "cross-site request refused"}, status_code=403)

    async def _session(self, request: Request) -> Session | Response:
        """The request's session: the cookie's, if this server issued it, else a fresh one (an id
        chosen by someone else is never adopted: no session fixation). A fresh one only within the
        client address's limit and while the store is under its size limit; otherwise the refusal
        (429 or 503, with a notice the page shows)."""
        known = await self._known_session(request)
        if known is not None:
            return known
        if self.guard is not None and await self.guard.full():
            return refusal(503, STORE_FULL)
        address = self.address(request)
        if not await self.new_sessions.admit(address):
            return await self._too_many(address)
        key = secrets.token_hex(16)
        key += self._sign(key).decode()
        return Session(key, session_chat(key), True)

    async def _known_session(self, request: Request) -> Session | None:
        """The cookie's session if this server issued it, else None."""
        if self._secret is None:
            self._secret = (await self.assistant.store.meta_default(SECRET_META, secrets.token_hex(32))).encode()
        key = request.cookies.get(COOKIE, "")
        if len(key) == 64 and hmac.compare_digest(key[32:].encode("utf-8", "surrogatepass"), self._sign(key[:32])):
            return Session(key, session_chat(key), False)
        return None

    async def _posting_session(self, request: Request) -> Session | Response:
        """The session of a request that writes: JSON from this site, within its address's limit of
        posts, while the store is under its size limit (every session, not only new ones), then as
        `_session` (a refusal is the response to send)."""
        refused = self._cross_site(request)
        if refused is not None:
            return refused
        address = self.address(request)
        if not await self.posts.admit(address):
            return await self._too_many(address)
        session = await self._session(request)  # past the store's limit no new session is issued
        if isinstance(session, Session) and self.guard is not None and await self.guard.full() and \
                await self.assistant.store.web_transcript_bytes(session.chat) >= FULL_STORE_SESSION_BYTES:
            return refusal(503, STORE_FULL)  # a chat in progress may finish, not grow the store without end
        return session

    async def _too_many(self, address: str) -> Response:
        """The 429, after a pause: a client flooding from one address waits instead of costing MIA
        a thousand refusals a second (a few held at once per address, so the pause costs no memory
        worth a limit of its own)."""
        held = self._held.get(address, 0)
        if held < TARPIT_MAX_HELD and self._held_total < TARPIT_MAX_TOTAL:
            self._held[address] = held + 1
            self._held_total += 1
            try:
                await asyncio.sleep(self.tarpit_seconds)
            finally:
                self._held_total -= 1
                left = self._held.pop(address) - 1
                if left:
                    self._held[address] = left
        return refusal(429, TOO_MANY)

    def _sign(self, nonce: str) -> bytes:
        return hmac.new(self._secret, nonce.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32].encode()

    def _with_cookie(self, response: Response, session: Session) -> Response:
        if session.new:
            response.set_cookie(COOKIE, session.key, max_age=90 * 24 * 3600, httponly=True, samesite="strict",
                                secure=self.secure_cookie)
        return response

    # -- routes ---------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        session = await self._session(request)
        page = FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})
        # Refused a session, the page still loads (without a cookie): its requests show the notice.
        return self._with_cookie(page, session) if isinstance(session, Session) else page

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def messages(self, request: Request) -> Response:
        if request.method == "GET":
            after = message_id_after(request.query_params.get("after", "0"))
            if after is None:
                return JSONResponse({"error": "after must be a message id"}, status_code=400)
            address = self.address(request)
            if not await self.reads.admit(address):
                return await self._too_many(address)
            session = await self._session(request)
            if not isinstance(session, Session):
                return JSONResponse({"messages": []})  # nothing to show, and no session issued
            rows = [] if session.new else await self.assistant.store.web_messages(session.chat, after, READ_ROWS)
            return self._with_cookie(JSONResponse({"messages": rows, "more": len(rows) >= READ_ROWS}), session)
        session = await self._posting_session(request)
        if not isinstance(session, Session):
            return session
        chat = session.chat
        body = await self._json(request)
        if isinstance(body, Response):
            return body
        text = body.get("text")
        if not isinstance(text, str) or not is_unicode(text):
            return JSONResponse({"error": "text must be a string"}, status_code=400)
        message_id = body.get("message_id") or uuid.uuid4().hex
        if not isinstance(message_id, str) or len(message_id) > 64 or not is_unicode(message_id):
            return JSONResponse({"error": "message_id must be a short string"}, status_code=400)
        after = message_id_after(body.get("after", 0))  # the last message the page shows
        if after is None:
            return JSONResponse({"error": "after must be a message id"}, status_code=400)
        incoming = Incoming(CHANNEL, chat, text[:MAX_TEXT], f"{chat}:{message_id}")
        rows: list[dict] = []

        async def record(unit, msg: Incoming, outcome: Outcome) -> None:
            # The transcript commits with the conversation state: a reload shows exactly this.
            if msg.text.strip() != "/start":  # the page's own greeting request is not the citizen's words
                user_id = await unit.add_web_message(chat, "user", msg.text, [])
                rows.append({"id": user_id, "role": "user", "text": msg.text, "buttons": []})
            for reply in outcome.replies:
                bot_id = await unit.add_web_message(chat, "bot", reply.text, _buttons(reply))
                rows.append({"id": bot_id, "role": "bot", "text": reply.text, "buttons": _buttons(reply)})

        outcome = await self.assistant.handle_outcome(incoming, record=record)
        more = False
        if after and not session.new:  # also what arrived since the page's last message (a staff reply)
            rows = await self.assistant.store.web_messages(chat, after, READ_ROWS)
            more = len(rows) >= READ_ROWS
        return self._with_cookie(JSONResponse({"messages": rows, "more": more, "duplicate": outcome is None}),
                                 session)

    async def set_lang(self, request: Request) -> Response:
        session = await self._posting_session(request)
        if not isinstance(session, Session):
            return session
        chat = session.chat
        body = await self._json(request)
        if isinstance(body, Response):
            return body
        lang = body.get("lang")
        if lang not in ("id", "en"):
            return JSONResponse({"error": "lang must be id or en"}, status_code=400)
        async with self.assistant.store.unit() as unit:
            state = await unit.load_state(CHANNEL, chat)
            state.lang = lang
            await unit.save_state(CHANNEL, chat, state)
        return self._with_cookie(JSONResponse({"lang": lang}), session)

    async def new_conversation(self, request: Request) -> Response:
        """"Percakapan baru": the browser forgets its session key (the old conversation is kept
        until the retention purge, like any other); the next request starts a fresh one. A citizen
        leaving an officer's conversation leaves it as "kembali ke bot" does: the officer is told."""
        refused = self._cross_site(request)
        if refused is not None:
            return refused
        session = await self._known_session(request)
        if session is not None:
            async with self.assistant.store.unit() as unit:
                in_handoff = bool((await unit.load_state(CHANNEL, session.chat)).data.get(HANDOFF_KEY))
            if in_handoff:
                message_id = f"{session.chat}:{uuid.uuid4().hex}"
                await self.assistant.handle_outcome(Incoming(CHANNEL, session.chat, LEAVE_HANDOFF, message_id))
        response = JSONResponse({"ok": True})
        response.delete_cookie(COOKIE, httponly=True, samesite="strict", secure=self.secure_cookie)
        return response

    @staticmethod
    async def _json(request: Request) -> dict | Response:
        try:
            raw = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            return JSONResponse({"error": "request too large"}, status_code=413)
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):  # RecursionError: arrays nested thousands deep
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
        return body


def message_id_after(value) -> int | None:
    """A transcript position the page sends (`after`: the last message id it shows), or None if it is not one."""
    try:
        after = int(value) if isinstance(value, (int, str)) and not isinstance(value, bool) else -1
    except ValueError:
        after = -1
    return after if 0 <= after < 2**63 else None  # SQLite's integers: a larger one would be an OverflowError


def refusal(status: int, notice: str) -> JSONResponse:
    """A request refused for abuse or a full store: nothing stored, a notice for the citizen."""
    return JSONResponse({"error": "too many requests" if status == 429 else "not taking new sessions",
                         "notice": notice}, status_code=status, headers={"Retry-After": "60"})


# The page loads nothing from elsewhere and runs no inline script: everything but its own
# files is refused, and no other site may frame it (clickjacking).
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                                 b"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
                                 b"frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """ASGI middleware: the security headers on every response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), *SECURITY_HEADERS])
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _QuietServer(uvicorn.Server):
    """uvicorn inside MIA's own loop: MIA, not uvicorn, handles SIGINT/SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


class WebServer:
    """Runs a Starlette app with uvicorn as a task of the running event loop."""

    def __init__(self, app: Starlette, host: str, port: int):
        # On stop, a request still open after a second (a slow client) is cut: shutdown stays prompt.
        # log_config=None: uvicorn's loggers go through MIA's handlers, with their masking and secret filters.
        self.server = _QuietServer(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                                  access_log=False, proxy_headers=False, timeout_graceful_shutdown=1,
                                                  log_config=None))
        self.host, self.wanted_port = host, port
        self.task = None

    async def start(self) -> None:
        # The socket is bound here, not by uvicorn: uvicorn answers a failed bind with sys.exit()
        # inside its task, which tears through the event loop and leaves the store's thread behind.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY on accepted connections only for
        # sockets that say so (with proto 0, Nagle and delayed ACKs added 40 ms to each reply).
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.wanted_port))
        except OSError as exc:
            sock.close()
            raise OSError(f"the web chat cannot listen on {self.host}:{self.wanted_port} (MIA_WEB_HOST, "
                          f"MIA_WEB_PORT): {exc.strerror or exc}") from None
        self.task = asyncio.create_task(self.server.serve(sockets=[sock]), name="web")
        while not self.server.started:
            if self.task.done():
                self.task.result()
                raise RuntimeError("web server stopped during start-up")
            await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.task is not None:
            self.server.should_exit = True
            await self.task
            self.task = None
