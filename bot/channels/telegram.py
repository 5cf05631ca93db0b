"""Telegram channel (python-telegram-bot v22): citizens' updates to Incoming, typed replies to messages."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
import warnings

from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, ContextTypes, TypeHandler
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.channels.delivery import LeasedReplies
from bot.channels.http import NOT_PROCESSED, ORPHAN_SECONDS, BodyTooLarge, read_body, same_secret
from bot.channels.telegram_staff import TelegramStaffConsole
from bot.core.assistant import Assistant
from bot.core.messages import CLAIM, CLOSE, DIGEST, FEEDBACK, Button, Incoming, Reply, reply_of, to_payload
from bot.core.tasks import BackgroundTask, KeyedLocks, finish
from bot.runtime.staff import SendError, StaffDesk

log = logging.getLogger(__name__)

CHANNEL = "telegram"
SAY = "say:"  # callback data of a citizen's button: the text it stands for
# Callback data of the other buttons: a prefix per action, then the request reference or digest action.
PREFIXES = {CLAIM: "claim:", CLOSE: "done:", DIGEST: "dg:"}
COMMANDS = [
    BotCommand("start", "Mulai dan tampilkan menu"),
    BotCommand("menu", "Tampilkan menu"),
    BotCommand("petugas", "Bicara dengan petugas"),
    BotCommand("batal", "Batalkan yang sedang berjalan"),
    BotCommand("status", "Status permintaan, contoh: /status RKT-2026-000123"),
]
_BOLD = re.compile(r"\*([^*\n]+)\*")
MAX_UPDATE_BYTES = 1024 * 1024  # Telegram's updates are a few KB; anything near this is not one
SECRET_HEADER = "x-telegram-bot-api-secret-token"
# An update whose handling fails (a dropped database connection, a full pool, a deadlock) is
# tried again after each of these pauses, its chat's later updates waiting behind it; after the
# last the failure is recorded and the citizen is told.
RETRY_DELAYS = (1.0, 2.0, 4.0)


def to_html(text: str) -> str:
    """MIA's plain text with *bold* marks -> Telegram HTML, everything else escaped."""
    return _BOLD.sub(r"<b>\1</b>", html.escape(text, quote=False))


def keyboard(buttons: list[tuple[str, str]], feedback: list[tuple[str, str]] = ()) -> InlineKeyboardMarkup | None:
    """Inline keyboard from (title, callback data) pairs: one per row, two per row when many; the
    feedback pair ("Membantu / Tidak membantu") side by side on a last row of its own."""
    if not buttons and not feedback:
        return None
    per_row = 1 if len(buttons) <= 3 else 2
    rows = [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]
    if feedback:
        rows.append(list(feedback))
    return InlineKeyboardMarkup([[InlineKeyboardButton(t, callback_data=d) for t, d in row] for row in rows])


def button_data(button: Button) -> str:
    """A button's callback data: its action's prefix and payload, cut to Telegram's 64 bytes."""
    data = PREFIXES.get(button.kind, SAY) + button.payload
    while len(data.encode("utf-8")) > 64:
        data = data[:-1]
    return data


class TelegramSender:
    """Outbox sender for Telegram: messages, and edits of earlier ones."""

    def __init__(self, application: Application):
        self.application = application

    async def send(self, chat_id: str, payload: dict) -> str | None:
        bot = self.application.bot
        reply = reply_of(payload)
        text = reply.text if reply.html else to_html(reply.text)
        markup = keyboard([(b.title, button_data(b)) for b in reply.buttons if b.kind != FEEDBACK],
                          [(b.title, button_data(b)) for b in reply.buttons if b.kind == FEEDBACK])
        try:
            if payload.get("edit"):
                try:
                    await bot.edit_message_text(text, chat_id=chat_id, message_id=int(payload["edit"]),
                                                parse_mode=ParseMode.HTML, reply_markup=markup)
                except BadRequest as exc:
                    if "not modified" not in str(exc).lower():
                        raise
                return payload["edit"]
            message = await bot.send_message(chat_id, text, parse_mode=ParseMode.HTML, reply_markup=markup)
            return str(message.message_id)
        except RetryAfter as exc:
            raise SendError(f"rate limited: {exc}", retry_after=_retry_after(exc)) from None
        except Forbidden as exc:
            raise SendError(f"forbidden: {exc}", permanent=True) from None
        except BadRequest as exc:
            permanent = "chat not found" in str(exc).lower() or "can't parse" in str(exc).lower()
            raise SendError(f"bad request: {exc}", permanent=permanent) from None
        except TelegramError as exc:
            raise SendError(f"telegram error: {exc}") from None


class TelegramChannel:
    """Citizens in private chats, staff in their offices' chats; the core never sees PTB objects."""

    name = CHANNEL

    def __init__(self, token: str, base_url: str, assistant: Assistant, desk: StaffDesk,
                 webhook_url: str | None = None, webhook_secret: str | None = None, poll_timeout: int = 10,
                 on_queue=None, reload=None, operator_chat: str | None = None, digest=None):
        self.assistant = assistant
        self.desk = desk
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhook_path = "/" + webhook_url.split("://", 1)[-1].partition("/")[2].strip("/") if webhook_url else None
        self.on_queue = on_queue
        self.poll_timeout = poll_timeout
        self.operator_chat = str(operator_chat) if operator_chat else None
        self.staff = TelegramStaffConsole(desk, reload, self.operator_chat, digest)
        base_url = base_url.rstrip("/")
        self.application = (
            ApplicationBuilder()
            .token(token)
            .base_url(base_url)
            .base_file_url(base_url.replace("/bot", "/file/bot"))
            .get_updates_read_timeout(30)
            # Chats are handled concurrently; _process keeps each chat's own messages in order.
            .concurrent_updates(64)
            .build()
        )
        self.application.add_handler(TypeHandler(Update, self._on_update))
        self.application.add_error_handler(self._on_error)
        self.sender = TelegramSender(self.application)
        self._chat_locks = KeyedLocks()  # a chat's updates, one after another
        self._failed: dict[int, Exception] = {}  # update id -> what its handler raised (PTB keeps it from us)
        self.replies = LeasedReplies(assistant, self.sender, CHANNEL, on_queue)
        self._poller = BackgroundTask("telegram-poll", self._poll)
        self._sweeper = BackgroundTask("telegram-inbox", self._sweep)
        self._drains = KeyedLocks()  # one drain of a chat's kept updates at a time
        self._tasks: set[asyncio.Task] = set()
        self._stopping = False

    async def start(self) -> None:
        """Connect, register the commands, and start polling (or the webhook server)."""
        app = self.application
        await app.initialize()
        try:
            await app.bot.set_my_commands(COMMANDS)
        except TelegramError as exc:  # commands are a convenience; never a reason not to start
            log.warning("setMyCommands failed: %s", exc)
        await app.start()
        if self.webhook_url:
            # Updates arrive at routes() on MIA's web server, any worker behind the load balancer.
            await app.bot.set_webhook(self.webhook_url, secret_token=self.webhook_secret,
                                      allowed_updates=Update.ALL_TYPES)
            # What this worker's last run kept but did not handle (a crash after the 200) goes now;
            # what other workers left waits for the sweep.
            for chat in {chat for _, chat, _ in await self.assistant.store.inbox_pending(CHANNEL, mine=True)}:
                self._spawn(self._drain(chat))
            self._sweeper.start()
            log.info("telegram: webhook at %s", self.webhook_path)
        else:
            await app.bot.delete_webhook()  # a webhook left by an earlier setting would refuse getUpdates
            self._poller.start()
            log.info("telegram: polling")

    async def stop(self) -> None:
        """Stop receiving; finish the update in hand."""
        app = self.application
        self._stopping = True  # the update in hand is finished; the rest wait in the inbox
        await self._poller.stop()
        await self._sweeper.stop()
        await finish(set(self._tasks))
        await self.replies.wait()
        if app.running:
            await app.stop()
        await app.shutdown()

    # -- incoming: the webhook ----------------------------------------------------------------

    def routes(self) -> list[Route]:
        """The webhook's route on MIA's web server (webhook mode only)."""
        return [Route(self.webhook_path, self.receive, methods=["POST"])] if self.webhook_path else []

    async def receive(self, request: Request) -> Response:
        """An update from Telegram: the secret checked before the body is read, the update kept
        in the store, then 200; it is handled after, by this worker or (if it dies) another."""
        if not same_secret(request.headers.get(SECRET_HEADER, ""), self.webhook_secret or ""):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        if "json" not in request.headers.get("content-type", ""):
            return JSONResponse({"error": "body must be JSON"}, status_code=415)
        try:
            raw = await read_body(request, MAX_UPDATE_BYTES)
        except BodyTooLarge:
            return JSONResponse({"error": "too large"}, status_code=413)
        try:
            data = json.loads(raw)
            update = Update.de_json(data, self.application.bot)
            if not isinstance(data.get("update_id"), int) or update is None:
                raise ValueError("no update_id")
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError):
            return JSONResponse({"error": "not a Telegram update"}, status_code=400)
        chat = str(update.effective_chat.id) if update.effective_chat else ""
        await self.assistant.store.inbox_add(CHANNEL, str(update.update_id), chat, raw.decode("utf-8"))
        # Kept now or before (Telegram sent it again: the worker that kept it may have died before
        # handling it). A drain handles what is still pending; an update is handled once either way.
        self._spawn(self._drain(chat))
        return JSONResponse({"ok": True})

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, chat: str) -> None:
        """Handle a chat's kept updates in the order they arrived, one drain per chat at a time."""
        async with self._drains.hold(chat):
            for row_id, _chat, body in await self.assistant.store.inbox_pending(CHANNEL, chat_id=chat):
                if self._stopping:
                    return
                try:
                    update = Update.de_json(json.loads(body), self.application.bot)
                except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as exc:
                    log.exception("telegram: a kept update cannot be read")  # nor ever will be
                    error = exc
                else:
                    error = await self._process(update)  # a stop cancels it: the update stays pending
                await self.assistant.store.inbox_done(row_id, None if error is None else repr(error)[:500])

    async def _sweep(self) -> None:
        """Updates kept but left unhandled (a worker stopped or died after the 200): handled here."""
        while True:
            try:
                chats = {chat for _, chat, _ in await self.assistant.store.inbox_pending(
                    CHANNEL, received_before=time.time() - ORPHAN_SECONDS)}
                for chat in chats:
                    self._spawn(self._drain(chat))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next sweep tries again
                log.exception("telegram: reading the kept updates failed")
            await asyncio.sleep(ORPHAN_SECONDS / 2)

    # -- incoming: polling -----------------------------------------------------------------

    async def _poll(self) -> None:
        """Long polling that confirms updates only once they are handled.

        PTB's Updater confirms a batch (the next getUpdates offset) as soon as it is queued, so
        a crash could lose updates it had fetched. Here the offset moves past a batch only
        after every update in it is handled and committed; after a crash Telegram sends the
        batch again and the ones already handled are recognised by their update id.
        """
        bot = self.application.bot
        offset: int | None = None
        delay = 1.0
        while True:
            try:
                updates = await bot.get_updates(offset=offset, timeout=self.poll_timeout,
                                                allowed_updates=Update.ALL_TYPES,
                                                read_timeout=self.poll_timeout + 10)
            except asyncio.CancelledError:
                raise
            except RetryAfter as exc:
                await asyncio.sleep(_retry_after(exc))
                continue
            except Exception as exc:  # noqa: BLE001 - network trouble: wait and ask again
                log.warning("telegram: getUpdates failed (%s); retry in %.0fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            if not updates:
                continue
            # Chats in parallel; _process keeps each chat's updates in order (locks are FIFO) and
            # tries a failed one again before the offset moves past it.
            await asyncio.gather(*(self._process(u) for u in updates))
            offset = updates[-1].update_id + 1

    async def _process(self, update: Update) -> Exception | None:
        """Hand an update to PTB, after the chat's earlier ones. PTB passes a handler's failure to
        _on_error and returns normally; a failed update is handed over again after each of
        RETRY_DELAYS (a message is answered once: its claim commits with the answer), and after
        the last the citizen is told. Returns the last failure, None once handled."""
        chat = update.effective_chat
        error = None
        async with self._chat_locks.hold(chat.id if chat else None):  # one after another, in Telegram's order
            for delay in (*RETRY_DELAYS, None):
                await self.application.process_update(update)
                error = self._failed.pop(update.update_id, None)
                if error is None or delay is None:
                    break
                log.warning("telegram: update %s failed (%r); trying again in %.0f s", update.update_id, error, delay)
                await asyncio.sleep(delay)
        if error is not None:
            log.error("telegram: update %s failed %d times, given up: %r", update.update_id,
                      len(RETRY_DELAYS) + 1, error)
            await self._not_processed(update)
        return error

    async def _not_processed(self, update: Update) -> None:
        """Tell a citizen their message could not be handled (sent directly: the store may be down)."""
        chat = update.effective_chat
        if chat is None or chat.type != "private" or self.staff.serves(str(chat.id)):
            return
        try:
            await self.sender.send(str(chat.id), to_payload(Reply(NOT_PROCESSED)))
        except Exception:  # noqa: BLE001 - the failure is logged already
            log.exception("telegram: telling chat %s its message failed did not work", chat.id)

    async def _on_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            await self._handle_update(update, context)
        except Exception as exc:
            self._failed[update.update_id] = exc  # for _process, which retries it
            raise  # and PTB logs it through _on_error

    async def _handle_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        user = update.effective_user
        if chat is None:
            return
        chat_id = str(chat.id)
        if self.staff.serves(chat_id):  # an office's staff chat or the operators' chat
            await self.staff.handle(update, chat_id)
            return
        query = update.callback_query
        if query is not None:
            data = query.data or ""
            if not data.startswith(SAY):  # a staff button outside a staff chat: the console refuses it
                await self.staff.on_button(update, chat_id)
                return
            await query.answer()
            await self._answer(Incoming(CHANNEL, chat_id, data[len(SAY):], str(update.update_id),
                                        user_name=user.first_name if user else None))
            return
        message = update.message
        if message is None or chat.type != "private":
            return  # edited messages, channel posts, groups: MIA talks to citizens one to one
        location = (message.location.latitude, message.location.longitude) if message.location else None
        text = message.text or message.caption or ""
        incoming = Incoming(CHANNEL, chat_id, text, str(update.update_id),
                            user_name=user.first_name if user else None, location=location, media=_media(message))
        await self._answer(incoming)

    async def _answer(self, incoming: Incoming) -> None:
        """Handle a citizen's message; its replies are committed with it, then sent in the background."""
        await self.replies.answer(incoming)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update failed: %s", context.error, exc_info=context.error)


def _media(message) -> str | None:
    """What a message carries besides text (its caption is the text)."""
    for attr, kind in (("photo", "photo"), ("voice", "voice"), ("audio", "voice"), ("video", "video"),
                       ("video_note", "video"), ("document", "document"), ("sticker", "sticker"),
                       ("contact", "contact"), ("animation", "video")):
        if getattr(message, attr, None):
            return kind
    return None


def _retry_after(exc: RetryAfter) -> float:
    """Seconds Telegram asks to wait (PTB 22 warns its type will become timedelta; both are read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wait = exc.retry_after
    return wait.total_seconds() if hasattr(wait, "total_seconds") else float(wait)
