"""Composition root: builds the content, store, assistant, staff desk and channels; starts and stops them."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator
from urllib.parse import urlsplit

from bot.channels.base import Channel
from bot.core.assistant import Assistant
from bot.core.messages import Reply, to_payload
from bot.core.routes import StaffRoutes
from bot.runtime.config import Settings
from bot.core.content import Content, configure_understanding
from bot.runtime.digest import Digest
from bot.content.checks import template_errors
from bot.content.reload import ContentReloader
from bot.core.yamlfile import ContentErrors
from bot.runtime.staff import OutboxWorker, StaffDesk
from bot.store.base import Store
from bot.store.open import shown, store_for
from bot.store.sqlite import SQLiteStore
from bot.core.tasks import BackgroundTask

log = logging.getLogger(__name__)
CHANNEL_START_SECONDS = 8.0  # a channel that cannot start in this time (a Bot API that never answers) fails the start
STOP_SECONDS = 10.0
DESK_REFRESH_SECONDS = 5.0  # how soon an office's first staff account starts receiving notices
NOTICE_SECONDS = 120.0  # one operators' notice of a kind per this long, among all workers
RETENTION_LEASE_SECONDS = 1800.0  # the worker running the daily purge holds it this long against the others


@asynccontextmanager
async def open_assistant(settings: Settings, db_path: str | Path | None = None) -> AsyncIterator[Assistant]:
    """An assistant over the settings' content and database (or `db_path`, e.g. ":memory:")."""
    content = load_content(settings)
    log.info("content loaded in %.0f ms", content.load_seconds * 1000)
    store = store_for(db_path if db_path is not None else settings.database)
    await store.open()
    try:
        yield Assistant(content, store, staff_chats=settings.staff_chats,
                        form_ttl_seconds=settings.mia_form_ttl_hours * 3600)
    finally:
        await store.close()


def load_content(settings: Settings) -> Content:
    """The content with the settings' sentence model and cache; a cold build logs its progress."""
    configure_understanding(settings.mia_sentence_model, settings.mia_sentence_model_threads, settings.mia_cache_dir)
    shown: set[int] = set()

    def progress(stage: str, done: int, total: int) -> None:
        step = done * 10 // max(total, 1)  # every tenth
        if step not in shown:
            shown.add(step)
            log.info("first start after a content change: sentence vectors of %d new examples, %d%% done",
                     total, step * 10)

    content = Content.load(settings.mia_content_dir, progress=progress)
    broken = template_errors(content)
    if broken:  # a citizen would get a server error instead of that answer: fix first, as a reload demands
        raise ContentErrors(broken)
    return content


def start_error(exc: BaseException, settings: Settings) -> str:
    """Why `mia run` could not start, in one line that names the setting and holds no secret."""
    try:
        from telegram.error import InvalidToken, NetworkError
    except ImportError:  # pragma: no cover
        InvalidToken = NetworkError = ()  # noqa: N806
    if isinstance(exc, InvalidToken):
        text = "Telegram refused the bot token (TELEGRAM_BOT_TOKEN): check it with @BotFather"
    elif isinstance(exc, NetworkError):
        text = (f"the Telegram Bot API at {settings.telegram_api_base_url} cannot be reached "
                f"(TELEGRAM_API_BASE_URL): {exc.__class__.__name__}")
    elif isinstance(exc, (OSError, ValueError, ConnectionError)) and str(exc):
        text = str(exc)
    else:
        text = f"{exc.__class__.__name__}: {exc}"
    secrets = [v.get_secret_value() for v in (settings.telegram_bot_token, settings.telegram_webhook_secret,
                                              settings.whatsapp_access_token, settings.whatsapp_app_secret,
                                              settings.whatsapp_verify_token) if v]
    secrets += [p for p in [urlsplit(settings.mia_database_url).password] if p]  # e.g. in a DSN error
    for secret in secrets:
        text = text.replace(secret, "***")
        if ":" in secret:  # a bot token's secret half alone is a secret too
            text = text.replace(secret.split(":", 1)[1], "***")
    return " ".join(text.split())[:300]


class MiaApp:
    """Everything `mia run` runs: the store, the outbox worker and the configured channels."""

    def __init__(self, settings: Settings, console_chat: str | None = None):
        self.settings = settings
        self.console_chat = console_chat  # `mia chat`: the terminal is the only channel
        self.started: list[Channel] = []  # in the order they started; stopped in reverse
        self._stop = asyncio.Event()
        self.store: Store | None = None
        self.assistant: Assistant | None = None
        self.desk: StaffDesk | None = None
        self.worker: OutboxWorker | None = None
        self.telegram = None
        self.web = None
        self.web_server = None
        self.whatsapp = None
        self.staff_desk_web = None

    @property
    def channels(self) -> list[str]:
        """Names of the channels the settings configure (the web chat when nothing else is)."""
        if self.console_chat is not None:
            return ["console"]
        names = ["telegram"] if self.settings.telegram_bot_token else []
        if self.settings.whatsapp_enabled:
            names.append("whatsapp")
        if self.settings.mia_web_enabled or not names:
            names.append("web")
        return names

    @property
    def web_url(self) -> str | None:
        """Where the web chat is served, once started."""
        if self.web_server is None:
            return None
        return f"http://{self.settings.mia_web_host}:{self.web_server.port}"

    async def start(self) -> None:
        s = self.settings
        if s.start_problems():
            raise ValueError("; ".join(s.start_problems()))
        content = load_content(s)
        log.info("content loaded in %.0f ms", content.load_seconds * 1000)
        self.store = store_for(s.database, worker=s.mia_worker_id)
        try:
            await self.store.open()
        except Exception as exc:  # noqa: BLE001 - a server that refuses names the setting to check
            if not s.mia_database_url:
                raise
            raise ConnectionError(f"the PostgreSQL database {shown(s.database)} (MIA_DATABASE_URL): "
                                  f"{exc.__class__.__name__}: {exc}") from exc
        # Leases are held under this worker's name: no other live process may work under it.
        await self.store.hold_worker_id()
        # What this worker's last run leased and never sent (a crash, a stop mid-send) goes out now;
        # other workers' leases are theirs until they run out.
        released = await self.store.release_outbox(None)
        if released:
            log.info("outbox: %d messages leased by the last run of worker %s queued again", released, s.mia_worker_id)
        unknown = sorted(set(s.staff_chats) - {o.id for o in content.knowledge.offices})
        if unknown:
            raise ValueError(f"MIA_STAFF_TELEGRAM_CHATS names unknown office(s): {', '.join(unknown)}")
        # The Telegram groups of the settings, and the web desk of every office with a staff account.
        staff_chats = self.staff_routes = StaffRoutes(s.staff_chats)
        staff_chats.set_desk_offices(await self.store.staff_offices())
        self.worker = OutboxWorker(self.store, {}, poll_seconds=s.mia_outbox_poll_seconds,
                                   max_backoff=s.mia_outbox_max_backoff_seconds)
        self.assistant = Assistant(content, self.store, staff_chats=staff_chats,
                                   form_ttl_seconds=s.mia_form_ttl_hours * 3600, on_enqueue=self.worker.wake,
                                   rate_limit=s.mia_rate_limit, staff_relays_per_minute=s.mia_staff_relays_per_minute,
                                   retention_days=s.mia_retention_days)
        self.desk = StaffDesk(content, self.store, staff_chats, on_enqueue=self.worker.wake)
        self.reloader = ContentReloader(s.mia_content_dir, [self.assistant, self.desk], gate_file=s.mia_gate_file,
                                        gate_min_accuracy=s.mia_gate_min_accuracy, notify=self.notify_operators)
        self.digest = Digest(self.store, self.reloader, self.assistant, self.queue_for_operators,
                             s.mia_operator_telegram_chat, weekday=s.mia_digest_weekday, hour=s.mia_digest_hour)
        for channel in self._channels():
            self.worker.senders[channel.name] = channel.sender
            replies = getattr(channel, "replies", None)  # a channel that sends its citizens' replies itself
            if replies is not None:
                self.worker.leave_alone(replies.chats_in_hand)
            try:
                await asyncio.wait_for(channel.start(), CHANNEL_START_SECONDS)
            except asyncio.TimeoutError:
                raise ConnectionError(f"the Telegram Bot API at {s.telegram_api_base_url} did not answer within "
                                      f"{CHANNEL_START_SECONDS:.0f} s (TELEGRAM_API_BASE_URL)") from None
            self.started.append(channel)
        routes = self.whatsapp.routes() if self.whatsapp is not None else []
        routes += self.telegram.routes() if self.telegram is not None else []
        if self.staff_desk_web is not None:
            routes += self.staff_desk_web.routes()
        if self.web is not None:
            from bot.channels.web import WebServer

            app = self.web.app(page="web" in self.channels, extra_routes=routes)
            self.web_server = WebServer(app, s.mia_web_host, s.mia_web_port)
            await self.web_server.start()
        self.worker.start()
        self._desk_refresh = BackgroundTask("staff-desk-offices", self._refresh_desk_offices)
        self._desk_refresh.start()
        if s.mia_reload_enabled:
            self.reloader.start_watching()
        self.digest.start()
        self._maintenance = BackgroundTask("retention", self._daily_purge)
        self._maintenance.start()
        log.info("MIA running: channels %s, database %s", ", ".join(self.channels), shown(s.database))

    def _channels(self) -> list[Channel]:
        """The configured channels, built (not started)."""
        s = self.settings
        built: list[Channel] = []
        if self.console_chat is not None:
            from bot.channels.console import ConsoleChannel

            built.append(ConsoleChannel(self.assistant, self.console_chat, on_queue=self.worker.wake,
                                        on_end=self._stop.set))
            return built
        if s.telegram_bot_token:
            from bot.channels.telegram import TelegramChannel

            self.telegram = TelegramChannel(
                s.telegram_bot_token.get_secret_value(), s.telegram_api_base_url, self.assistant, self.desk,
                webhook_url=s.telegram_webhook_url,
                webhook_secret=s.telegram_webhook_secret.get_secret_value() if s.telegram_webhook_secret else None,
                poll_timeout=s.telegram_poll_timeout_seconds, on_queue=self.worker.wake,
                reload=self.reloader.reload, operator_chat=s.mia_operator_telegram_chat, digest=self.digest,
            )
            built.append(self.telegram)
        if "whatsapp" in self.channels:
            from bot.channels.whatsapp import WhatsAppChannel, WhatsAppSender

            sender = WhatsAppSender(self.store, s.whatsapp_api_base_url, s.whatsapp_api_version,
                                    s.whatsapp_phone_number_id, s.whatsapp_access_token.get_secret_value(),
                                    s.whatsapp_template_name, s.whatsapp_template_language)
            self.whatsapp = WhatsAppChannel(self.assistant, sender, s.whatsapp_verify_token.get_secret_value(),
                                            s.whatsapp_app_secret.get_secret_value(), on_queue=self.worker.wake)
            built.append(self.whatsapp)
        webhooks = self.whatsapp is not None or bool(s.telegram_bot_token and s.telegram_webhook_url)
        if "web" in self.channels or webhooks:  # the webhooks are served by the web server
            from bot.channels.limits import StoreGuard
            from bot.channels.web import WebChannel
            from bot.runtime.config import parse_networks

            self.web = WebChannel(self.assistant, secure_cookie=s.mia_web_secure_cookie,
                                  new_sessions_per_minute=s.mia_web_new_sessions_per_minute,
                                  posts_per_minute=s.mia_web_messages_per_minute,
                                  reads_per_minute=s.mia_web_reads_per_minute,
                                  allowed_origins=tuple(o.strip() for o in s.mia_web_allowed_origins.split(",")
                                                        if o.strip()),
                                  trusted_proxies=parse_networks(s.mia_web_trusted_proxies),
                                  # Several workers may share a PostgreSQL database: limits are counted there.
                                  shared_limits=not isinstance(self.store, SQLiteStore),
                                  # The guard measures the SQLite file; a PostgreSQL server is watched by its own.
                                  guard=StoreGuard(s.mia_db_path, int(s.mia_store_max_mb * 1e6),
                                                   notify=self.notify_operators)
                                  if isinstance(self.store, SQLiteStore) else None)
            built.append(self.web)
            from bot.channels.desk import DeskChannel

            self.staff_desk_web = DeskChannel(self.store, self.desk, secure_cookie=s.mia_web_secure_cookie,
                                              allowed_origins=tuple(o.strip() for o in
                                                                    s.mia_web_allowed_origins.split(",") if o.strip()),
                                              content_dir=s.mia_content_dir, reload=self.reloader.reload)
            built.append(self.staff_desk_web)
        return built

    async def notify_operators(self, text: str) -> None:
        """A plain message to the operators' Telegram chat, through the outbox (never lost). Workers
        that see the same thing at once (a refused content edit) send it once between them."""
        if self.store is not None and self.settings.mia_operator_telegram_chat:
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]
            if not await self.store.take_lease(f"notice:{digest}", NOTICE_SECONDS):
                return
        await self.queue_for_operators(to_payload(Reply(text)))

    async def queue_for_operators(self, payload: dict) -> None:
        chat = self.settings.mia_operator_telegram_chat
        if not chat or self.store is None:
            log.info("no operators' chat configured: %s", payload["text"][:200])
            return
        async with self.store.unit() as unit:
            await unit.enqueue("telegram", chat, payload)
        self.worker.wake()

    async def _refresh_desk_offices(self) -> None:
        """An office joins the web desk's routes once `mia staff add` gave it an account (another process)."""
        while True:
            await asyncio.sleep(DESK_REFRESH_SECONDS)
            try:
                self.staff_routes.set_desk_offices(await self.store.staff_offices())
            except Exception:  # noqa: BLE001 - the last known offices keep serving
                log.exception("reading the staff desk's offices failed")

    async def _daily_purge(self) -> None:
        """Retention runs once a day even if nobody types `mia db purge`."""
        while True:
            try:
                last = await self.store.get_meta("purge_last")
                now = time.time()
                if (last is None or now - float(last) > 86400) and await self.store.take_lease(
                        "retention-purge", RETENTION_LEASE_SECONDS):
                    counts = await self.store.purge(now - self.settings.mia_retention_days * 86400)
                    await self.store.set_meta("purge_last", str(now))
                    log.info("retention purge: %s", counts)
                # A web conversation that never got past its first turn (a visit, or a client
                # dropping its cookie each time) is not kept.
                expired = await self.store.expire_single_turn_web(
                    now - self.settings.mia_web_single_turn_expiry_hours * 3600)
                if expired:
                    log.info("expired %d one-turn web conversations", expired)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001
                log.exception("retention purge failed")
            await asyncio.sleep(3600)

    async def stop(self) -> None:
        if getattr(self, "_desk_refresh", None) is not None:
            await self._desk_refresh.stop()
        if getattr(self, "_maintenance", None) is not None:
            await self._maintenance.stop()
        if getattr(self, "digest", None) is not None:
            await self.digest.stop()
        if getattr(self, "reloader", None) is not None:
            await self.reloader.stop()
        if self.web_server is not None:
            await self.web_server.stop()
        # The worker before the channels: it must not send through a sender they have closed.
        if self.worker is not None:
            await self.worker.stop()
        for channel in reversed(self.started):
            await channel.stop()
        self.started.clear()
        if self.store is not None:
            await self.store.close()

    async def run_until_stopped(self) -> None:
        """Run until SIGINT or SIGTERM (or, for `mia chat`, the end of the terminal's input)."""
        stop = self._stop
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
                pass
        try:
            await self.start()
        except BaseException:
            # Whatever was started is stopped (the store's thread would keep the process alive),
            # and the error goes up: `mia run` names it and exits non-zero for the supervisor.
            try:
                await asyncio.wait_for(self.stop(), STOP_SECONDS)
            except BaseException:  # noqa: BLE001 - the start-up error is the one to report
                log.debug("stopping after a failed start failed too", exc_info=True)
            raise
        if self.web_url:
            print(f"MIA web chat: {self.web_url}", flush=True)
        try:
            await stop.wait()
        finally:
            await self.stop()
