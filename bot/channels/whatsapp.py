"""WhatsApp Cloud API channel: a signed webhook (Starlette) in, the Graph API (httpx) out.

Guarantees kept here rather than in an SDK: the raw update is stored before Meta gets its
200, handling happens after, a message id is handled once (retries come for days and may be
reordered), and a message to a citizen whose 24-hour window has closed goes out as the
pre-approved template instead of being dropped.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.core.assistant import Assistant
from bot.channels.delivery import LeasedReplies
from bot.channels.http import NOT_PROCESSED, ORPHAN_SECONDS, BodyTooLarge, read_body, same_secret
from bot.core.messages import FEEDBACK, Button, Incoming, Reply, option_number, reply_of, to_payload
from bot.runtime.staff import SendError
from bot.core.tasks import BackgroundTask, finish

log = logging.getLogger(__name__)

CHANNEL = "whatsapp"
MAX_BODY = 1024 * 1024
WINDOW_SECONDS = 24 * 3600
MAX_TEXT = 4096
MAX_INTERACTIVE_BODY = 1024
RATE_LIMITED = {130429, 131056}  # throughput / pair rate limit: back off and retry
WINDOW_CLOSED = 131047  # re-engagement: only a template may be sent
MEDIA = {"image", "audio", "voice", "video", "document", "sticker", "contacts", "reaction", "unsupported"}
# What a malformed body raises while it is read (a field missing or of another type): it would
# fail again. Any other failure (the database, the network) may pass: the item is tried again
# after each of RETRY_DELAYS, the bodies after it waiting, and after the last the citizen is told.
MALFORMED = (AttributeError, TypeError, KeyError, ValueError, IndexError, RecursionError)
RETRY_DELAYS = (1.0, 2.0, 4.0)
MEDIA_KINDS = {"image": "photo", "audio": "voice", "voice": "voice", "video": "video", "document": "document",
               "sticker": "sticker", "contacts": "contact", "reaction": "reaction"}


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Cut a long text into WhatsApp-sized parts, at line breaks or spaces where possible."""
    parts = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit)
        if cut < limit // 2:
            cut = text.rfind(" ", 0, limit)
        if cut < limit // 2:
            cut = limit
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    parts.append(text)
    return [p for p in parts if p]


def render(text: str, buttons: list[dict]) -> tuple[list[dict], list[str]]:
    """Message bodies for a text with buttons, and the payloads a numbered answer stands for.

    Up to 3 reply buttons (titles <= 20), else a list (<= 10 rows, titles <= 24), else
    numbered text the citizen answers with the number.
    """
    if not buttons:
        return [{"type": "text", "text": {"body": part, "preview_url": False}} for part in split_text(text)], []
    use_buttons = len(buttons) <= 3 and all(len(b["title"]) <= 20 for b in buttons)
    use_list = not use_buttons and len(buttons) <= 10 and all(len(b["title"]) <= 24 for b in buttons)
    if not (use_buttons or use_list):
        lines = [f"{n}. {b['title']}" for n, b in enumerate(buttons, 1)]
        numbered = text + "\n\nBalas dengan angka / reply with the number:\n" + "\n".join(lines)
        return render(numbered, [])[0], [b["payload"] for b in buttons]
    bodies: list[dict] = []
    if len(text) > MAX_INTERACTIVE_BODY:
        bodies += render(text, [])[0]
        text = "Pilih salah satu / choose one:"
    if use_buttons:
        action = {"buttons": [{"type": "reply", "reply": {"id": b["payload"][:256], "title": b["title"]}}
                              for b in buttons]}
        interactive = {"type": "button", "body": {"text": text}, "action": action}
    else:
        rows = [{"id": b["payload"][:200], "title": b["title"]} for b in buttons]
        action = {"button": "Pilih / Choose", "sections": [{"title": "MIA", "rows": rows}]}
        interactive = {"type": "list", "body": {"text": text}, "action": action}
    bodies.append({"type": "interactive", "interactive": interactive})
    return bodies, []


def verify_signature(app_secret: str, raw: bytes, header: str | None) -> bool:
    """X-Hub-Signature-256: "sha256=" + HMAC-SHA256 of the raw body with the app secret."""
    if not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()
    return same_secret(header[len("sha256="):], expected)


class WhatsAppSender:
    """Outbox sender: respects the 24-hour window, numbered options, long texts, rate limits."""

    def __init__(self, store, base_url: str, version: str, phone_number_id: str, access_token: str,
                 template_name: str, template_language: str):
        self.store = store
        self.url = f"{base_url.rstrip('/')}/{version}/{phone_number_id}/messages"
        self.headers = {"Authorization": f"Bearer {access_token}"}
        self.template_name = template_name
        self.template_language = template_language
        self.client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self.client = httpx.AsyncClient(timeout=20)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    async def send(self, chat_id: str, payload: dict) -> str | None:
        reply = reply_of(payload)
        buttons = [{"title": b.title, "payload": b.payload} for b in citizen_buttons(reply)]
        contact = await self.store.whatsapp_contact(chat_id)
        if contact is None or time.time() - contact["last_inbound_at"] > WINDOW_SECONDS:
            body = {"type": "template", "template": {
                "name": self.template_name, "language": {"code": self.template_language},
                "components": [{"type": "body", "parameters": [{"type": "text", "text": payload["text"][:1000]}]}]}}
            return await self._post(chat_id, body)
        bodies, options = render(payload["text"], buttons)
        await self.store.set_whatsapp_options(chat_id, options)
        message_id = None
        for body in bodies:
            message_id = await self._post(chat_id, body)
        return message_id

    async def _post(self, chat_id: str, body: dict) -> str:
        if self.client is None:
            raise SendError("WhatsApp sender is not started")
        data = {"messaging_product": "whatsapp", "recipient_type": "individual", "to": chat_id, **body}
        try:
            response = await self.client.post(self.url, json=data, headers=self.headers)
        except httpx.HTTPError as exc:
            raise SendError(f"network: {exc!r}") from None
        if response.status_code < 300:
            return response.json()["messages"][0]["id"]
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {}
        code = error.get("code")
        message = f"graph {response.status_code} {code}: {error.get('message', response.text[:200])}"
        if code in RATE_LIMITED or response.status_code == 429:
            raise SendError(message)  # backed off and retried by the outbox
        if code == WINDOW_CLOSED:
            await self.store.close_whatsapp_window(chat_id)
            raise SendError(message)  # the retry goes out as the template
        if response.status_code >= 500:
            raise SendError(message)
        raise SendError(message, permanent=True)


class WhatsAppChannel:
    """The webhook routes and the background handling of stored updates."""

    name = CHANNEL

    def __init__(self, assistant: Assistant, sender: WhatsAppSender, verify_token: str, app_secret: str,
                 on_queue=None):
        self.assistant = assistant
        self.store = assistant.store
        self.sender = sender
        self.verify_token = verify_token
        self.app_secret = app_secret
        self.on_queue = on_queue
        self._lock = asyncio.Lock()
        # Replies commit with the answer and leave in the background, in order per chat, so a
        # slow Graph API answer to one chat never holds up the next stored update.
        self.replies = LeasedReplies(assistant, sender, CHANNEL, on_queue)
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False
        self._sweeper = BackgroundTask("whatsapp-inbox", self._sweep)

    def routes(self) -> list[Route]:
        return [Route("/whatsapp/webhook", self.verify, methods=["GET"]),
                Route("/whatsapp/webhook", self.receive, methods=["POST"])]

    async def start(self) -> None:
        await self.sender.start()
        self._spawn(mine=True)  # bodies this worker (MIA_WORKER_ID) kept before a restart, not handled
        self._sweeper.start()

    async def stop(self) -> None:
        self._stopping = True  # the update in hand is finished; the rest wait in the inbox for the next start
        await self._sweeper.stop()
        await finish(set(self._tasks))
        await self.replies.wait()
        await self.sender.stop()

    async def verify(self, request: Request) -> Response:
        q = request.query_params
        if q.get("hub.mode") == "subscribe" and same_secret(q.get("hub.verify_token", ""), self.verify_token):
            return PlainTextResponse(q.get("hub.challenge", ""))
        return PlainTextResponse("forbidden", status_code=403)

    async def receive(self, request: Request) -> Response:
        try:
            raw = await read_body(request, MAX_BODY)
        except BodyTooLarge:
            return JSONResponse({"error": "too large"}, status_code=413)
        signature = request.headers.get("x-hub-signature-256")
        if not signature:
            return JSONResponse({"error": "missing signature"}, status_code=401)
        if not verify_signature(self.app_secret, raw, signature):
            return JSONResponse({"error": "bad signature"}, status_code=403)
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            return JSONResponse({"error": "body must be JSON"}, status_code=400)
        if not isinstance(body, dict) or body.get("object") != "whatsapp_business_account":
            return JSONResponse({"error": "not a WhatsApp Business Account update"}, status_code=400)
        # Stored (as this worker's) before Meta gets its 200; this worker handles it, others only
        # once it is ORPHAN_SECONDS old (the sweep), so a body is read by one worker.
        stored = await self.store.add_whatsapp_update(raw.decode("utf-8"))
        if stored is not None:  # a replayed body was handled (or is waiting) already
            self._spawn(mine=True)
        return JSONResponse({"ok": True})

    async def _sweep(self) -> None:
        """Bodies stored but left unhandled (the worker that stored them stopped or died after the
        200; several workers share the inbox): handled here once they are ORPHAN_SECONDS old."""
        while True:
            await asyncio.sleep(ORPHAN_SECONDS / 2)
            try:
                before = time.time() - ORPHAN_SECONDS
                if await self.store.pending_whatsapp_updates(received_before=before):
                    self._spawn(received_before=before)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next sweep tries again
                log.exception("whatsapp: reading the stored updates failed")

    def _spawn(self, received_before: float | None = None, mine: bool = False) -> None:
        task = asyncio.create_task(self.process_pending(received_before, mine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def process_pending(self, received_before: float | None = None, mine: bool = False) -> None:
        """Handle stored updates in arrival order, one pass at a time: after a receive and at start
        (mine) the ones this worker kept; in the sweep any worker's received before a time; all of
        them when called without either."""
        async with self._lock:
            for row_id, raw in await self.store.pending_whatsapp_updates(received_before, mine):
                if self._stopping:
                    return
                try:
                    items = self._items(json.loads(raw))
                except MALFORMED as exc:  # one bad update must not block the rest
                    log.exception("whatsapp update %s cannot be read", row_id)
                    errors = [repr(exc)]
                else:
                    errors = await self._handle(items)  # a stop cancels it: the body stays pending
                await self.store.whatsapp_update_done(row_id, "; ".join(errors)[:500] or None)

    async def _handle(self, items: list) -> list[str]:
        """Every status and message of an update, each on its own: a malformed one costs the
        others nothing and is not tried again; one that failed otherwise is, after each of
        RETRY_DELAYS (a message is answered once: its claim commits with the answer), and after
        the last its citizen is told. Returns what went wrong."""
        errors = []
        for delay in (*RETRY_DELAYS, None):
            failed = []
            for handle, args in items:
                try:
                    await handle(*args)
                except MALFORMED as exc:
                    log.exception("whatsapp: an item of an update cannot be read")
                    errors.append(repr(exc)[:200])
                except Exception as exc:  # noqa: BLE001
                    if delay is None:
                        log.exception("whatsapp: an item of an update failed %d times, given up",
                                      len(RETRY_DELAYS) + 1)
                        errors.append(repr(exc)[:200])
                    else:
                        log.warning("whatsapp: an item of an update failed (%r); trying again in %.0f s", exc, delay)
                    failed.append((handle, args))
            if not failed or delay is None:
                break
            items = failed
            await asyncio.sleep(delay)
        for message in [args[0] for handle, args in failed if handle == self._message]:
            await self._not_processed(message)
        return errors

    async def _not_processed(self, message: dict) -> None:
        """Tell a citizen their message could not be handled (sent directly: the store may be down)."""
        try:
            await self.sender.send(message.get("from") or message.get("from_user_id"),
                                   to_payload(Reply(NOT_PROCESSED)))
        except Exception:  # noqa: BLE001 - the failure is logged already
            log.exception("whatsapp: telling a citizen their message failed did not work")

    def _items(self, body: dict) -> list:
        """(handler, arguments) for every status and message of an update, in order."""
        items = []
        for entry in body.get("entry", []):
            for change in entry.get("changes", []):
                value = change.get("value", {})
                names = {}
                for contact in value.get("contacts", []):
                    name = contact.get("profile", {}).get("name")
                    for key in ("wa_id", "user_id"):
                        if contact.get(key):
                            names[contact[key]] = name
                items += [(self._status, (s,)) for s in value.get("statuses", [])]
                items += [(self._message, (m, names)) for m in value.get("messages", [])]
        return items

    async def _status(self, status: dict) -> None:
        codes = [e.get("code") for e in status.get("errors", [])]
        chat_id = status.get("recipient_id") or status.get("recipient_user_id") or ""
        new = await self.store.record_whatsapp_status(str(status.get("id", "")), str(status.get("status", "")),
                                                      chat_id, codes[0] if codes else None)
        if not new:
            return  # a replay: it must not close a window the citizen has opened since
        if WINDOW_CLOSED in codes and chat_id:
            await self.store.close_whatsapp_window(chat_id)

    async def _message(self, message: dict, names: dict) -> None:
        chat_id = message.get("from") or message.get("from_user_id")
        if not chat_id or message.get("group_id"):
            return
        if not message.get("id"):
            log.warning("whatsapp: a message without an id ignored")
            return
        sent_at = _sent_at(message.get("timestamp"))
        options = await self.store.touch_whatsapp_contact(chat_id, sent_at)
        kind = message.get("type")
        text, location, media = "", None, None
        if kind == "text":
            text = message.get("text", {}).get("body", "")
            number = option_number(text, len(options))
            if number is not None:
                text = options[number - 1]  # an answer to numbered options
        elif kind == "interactive":
            interactive = message.get("interactive", {})
            reply = interactive.get("button_reply") or interactive.get("list_reply") or {}
            text = reply.get("id") or reply.get("title", "")
        elif kind == "button":  # a quick-reply button of a template
            text = message.get("button", {}).get("payload") or message.get("button", {}).get("text", "")
        elif kind == "location":
            loc = message.get("location", {})
            location = (loc.get("latitude"), loc.get("longitude"))
        elif kind in MEDIA:
            media = MEDIA_KINDS.get(kind, "other")
            text = (message.get(kind) or {}).get("caption", "") if isinstance(message.get(kind), dict) else ""
        incoming = Incoming(CHANNEL, chat_id, text, message["id"], user_name=names.get(chat_id), location=location,
                            media=media)
        await self.replies.answer(incoming)


def _sent_at(timestamp) -> float:
    """When the citizen wrote, never later than now: a timestamp in the future must not hold the
    24-hour window open."""
    now = time.time()
    try:
        return min(float(timestamp), now)
    except (TypeError, ValueError, OverflowError):
        return now


def citizen_buttons(reply: Reply) -> tuple[Button, ...]:
    """Reply buttons are at most three: the feedback pair gives way to the answer's own buttons."""
    buttons = tuple(b for b in reply.buttons if b.says)
    return buttons if len(buttons) <= 3 else tuple(b for b in buttons if b.kind != FEEDBACK)
