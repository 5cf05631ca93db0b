"""A faithful local Telegram Bot API server for end-to-end tests (real HTTP on 127.0.0.1).

It speaks the Bot API as python-telegram-bot uses it (form-encoded parameters whose values
are JSON, `{"ok": ..., "result": ...}` answers, long-polling getUpdates honouring offset and
timeout, 400/403/429 errors with Telegram's descriptions; once setWebhook names a URL, updates are
POSTed there instead, with the secret-token header, retried until answered 200, and getUpdates
answers 409 as Telegram does) and adds a control API under
/_test/ for the tests: a user sends a message or presses a button, a chat is made to fail,
an update is delivered again, and what each chat received is read back.

Run alone: python -m tests.fakes.botapi --port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from html.parser import HTMLParser
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import ThreadedServer

BOT = {"id": 7000001, "is_bot": True, "first_name": "MIA", "username": "mia_test_bot", "can_join_groups": True,
       "can_read_all_group_messages": False, "supports_inline_queries": False}


class BotApiState:
    """Everything the fake server remembers; touched only from its event loop."""

    def __init__(self) -> None:
        self.updates: list[dict] = []  # not yet confirmed by an offset
        self.delivered: dict[int, dict] = {}
        self.next_update_id = 1000
        self.next_message_id: dict[int, int] = {}
        self.messages: dict[int, list[dict]] = {}  # chat id -> messages in it (user and bot)
        self.sent_at: dict[tuple[int, int], float] = {}  # (chat, message id) -> when a bot message was accepted
        self.failing: dict[int, dict] = {}  # chat id -> {"code": 429|500|403|400, "retry_after": s, "delay": s}
        self.attempts: dict[int, list[float]] = {}  # chat id -> when each sendMessage to it arrived
        self.callback_answers: list[dict] = []
        self.commands: list[dict] = []
        self.calls: list[str] = []
        self.webhook: dict = {}
        self.webhook_posts: list[tuple[int, int]] = []  # (update id, HTTP status or 0 for no answer)
        self._delivery: asyncio.Task | None = None
        self.refused_tokens: set[str] = set()  # answered 401 Unauthorized
        self.changed = asyncio.Condition()

    def message_id(self, chat_id: int) -> int:
        self.next_message_id[chat_id] = self.next_message_id.get(chat_id, 0) + 1
        return self.next_message_id[chat_id]

    async def push(self, update: dict) -> dict:
        update["update_id"] = self.next_update_id
        self.next_update_id += 1
        self.updates.append(update)
        self.delivered[update["update_id"]] = update
        async with self.changed:
            self.changed.notify_all()
        return update


class _EntityParser(HTMLParser):
    """Telegram's HTML parse mode: supported tags become entities; anything else is an error."""

    TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline", "ins": "underline",
            "s": "strikethrough", "strike": "strikethrough", "del": "strikethrough", "code": "code", "pre": "pre",
            "a": "text_link", "tg-spoiler": "spoiler", "blockquote": "blockquote"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text = ""
        self.entities: list[dict] = []
        self.open: list[tuple[str, int, dict]] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.TAGS:
            raise ValueError(f"Unsupported start tag \"{tag}\"")
        self.open.append((tag, _utf16_len(self.text), dict(attrs)))

    def handle_endtag(self, tag):
        if not self.open or self.open[-1][0] != tag:
            raise ValueError(f"Unexpected end tag \"{tag}\"")
        _, start, attrs = self.open.pop()
        entity = {"type": self.TAGS[tag], "offset": start, "length": _utf16_len(self.text) - start}
        if tag == "a":
            entity["url"] = attrs.get("href", "")
        self.entities.append(entity)

    def handle_data(self, data):
        self.text += data


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(text: str) -> tuple[str, list[dict]]:
    """(plain text, entities) as Telegram shows an HTML message; ValueError when it cannot parse."""
    parser = _EntityParser()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ValueError(f"Can't find end tag corresponding to start tag \"{parser.open[-1][0]}\"")
    return parser.text, parser.entities


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _error(code: int, description: str, **parameters) -> JSONResponse:
    body: dict = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=code)


async def _params(request: Request) -> dict:
    """Bot API parameters: JSON body, or form/query fields whose values may be JSON."""
    if request.headers.get("content-type", "").startswith("application/json"):
        return await request.json()
    raw = dict(request.query_params)
    if request.method == "POST":
        raw.update(dict(await request.form()))
    out = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def _chat(chat_id: int, kind: str | None = None) -> dict:
    kind = kind or ("private" if chat_id > 0 else "supergroup")
    chat = {"id": chat_id, "type": kind}
    if kind == "private":
        chat["first_name"] = f"Warga{chat_id}"
    else:
        chat["title"] = f"Staf {chat_id}"
    return chat


def _user(user_id: int, first_name: str | None = None) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}", "language_code": "id"}


def build_app(state: BotApiState) -> Starlette:
    async def method(request: Request):
        name = request.path_params["method"]
        try:
            params = await _params(request)
        except ClientDisconnect:  # the bot process died mid-request (the crash suite kills it)
            return Response(status_code=499)
        state.calls.append(name)
        if request.path_params["token"] in state.refused_tokens:  # as Telegram answers a revoked token
            return _error(401, "Unauthorized")
        handler = METHODS.get(name.lower())
        if handler is None:
            return _error(404, "Not Found: method not found")
        return await handler(params)

    async def get_me(p):
        return _ok(BOT)

    async def true(p):
        return _ok(True)

    async def set_webhook(p):
        state.webhook = p
        if p.get("url") and state._delivery is None:
            state._delivery = asyncio.create_task(deliver())
        return _ok(True)

    async def delete_webhook(p):
        state.webhook = {}
        return _ok(True)

    async def webhook_info(p):
        return _ok({"url": state.webhook.get("url", ""), "has_custom_certificate": False,
                    "pending_update_count": len(state.updates)})

    async def deliver():
        """Telegram's side of a webhook: pending updates POSTed in order, a chat's one at a time and
        chats side by side (up to 8 connections), each retried until answered 200."""
        import httpx

        busy: set[int] = set()  # update ids in flight
        chats_busy: set[int] = set()

        def chat_of(update: dict) -> int:
            m = update.get("message") or (update.get("callback_query") or {}).get("message") or {}
            return m.get("chat", {}).get("id", 0)

        async def post(http, update: dict) -> None:
            url, secret = state.webhook.get("url"), state.webhook.get("secret_token")
            try:
                r = await http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": secret or ""})
                status = r.status_code
            except httpx.HTTPError:
                status = 0
            state.webhook_posts.append((update["update_id"], status))
            if status == 200:
                state.updates = [u for u in state.updates if u["update_id"] != update["update_id"]]
            else:
                await asyncio.sleep(0.2)  # Telegram waits, then tries again
            busy.discard(update["update_id"])
            chats_busy.discard(chat_of(update))
            async with state.changed:
                state.changed.notify_all()

        async with httpx.AsyncClient(timeout=30) as http:
            while True:
                if state.webhook.get("url"):
                    for update in list(state.updates):
                        chat = chat_of(update)
                        if len(busy) >= 8 or update["update_id"] in busy or chat in chats_busy:
                            continue
                        busy.add(update["update_id"])
                        chats_busy.add(chat)
                        asyncio.create_task(post(http, update))
                async with state.changed:
                    try:
                        await asyncio.wait_for(state.changed.wait(), timeout=0.5)
                    except asyncio.TimeoutError:
                        pass

    async def set_my_commands(p):
        state.commands = p.get("commands", [])
        return _ok(True)

    async def get_my_commands(p):
        return _ok(state.commands)

    async def get_updates(p):
        if state.webhook.get("url"):
            return _error(409, "Conflict: can't use getUpdates method while webhook is active; "
                               "use deleteWebhook to delete the webhook first")
        offset = int(p.get("offset") or 0)
        timeout = float(p.get("timeout") or 0)
        limit = int(p.get("limit") or 100)
        if offset:
            state.updates = [u for u in state.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not state.updates and time.monotonic() < deadline:
            async with state.changed:
                try:
                    await asyncio.wait_for(state.changed.wait(), timeout=max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
        return _ok(state.updates[:limit])

    def failure(chat_id: int) -> JSONResponse | None:
        f = state.failing.get(chat_id)
        if not f:
            return None
        code = f["code"]
        if code == 429:
            return _error(429, f"Too Many Requests: retry after {f.get('retry_after', 1)}",
                          retry_after=f.get("retry_after", 1))
        if code == 403:
            return _error(403, "Forbidden: bot was blocked by the user")
        if code == 400:
            return _error(400, "Bad Request: chat not found")
        return _error(502, "Bad Gateway")

    async def send_message(p):
        chat_id = int(p["chat_id"])
        state.attempts.setdefault(chat_id, []).append(time.time())
        delay = state.failing.get(chat_id, {}).get("delay")
        if delay:  # a slow Bot API: answers late, with a 502, the message not delivered
            await asyncio.sleep(delay)
            return _error(502, "Bad Gateway")
        failed = failure(chat_id)
        if failed is not None:
            return failed
        text = p.get("text")
        if not text:
            return _error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return _error(400, "Bad Request: message is too long")
        entities: list[dict] = []
        if str(p.get("parse_mode", "")).upper() == "HTML":
            try:
                text, entities = parse_html(text)
            except ValueError as exc:
                return _error(400, f"Bad Request: can't parse entities: {exc}")
        message = {"message_id": state.message_id(chat_id), "date": int(time.time()), "chat": _chat(chat_id),
                   "from": BOT, "text": text}
        if entities:
            message["entities"] = entities
        if p.get("reply_markup"):
            message["reply_markup"] = p["reply_markup"]
        state.messages.setdefault(chat_id, []).append(message)
        state.sent_at[(chat_id, message["message_id"])] = time.time()
        async with state.changed:
            state.changed.notify_all()
        return _ok(message)

    async def edit_message_text(p):
        chat_id = int(p["chat_id"])
        failed = failure(chat_id)
        if failed is not None:
            return failed
        text, entities = p["text"], []
        if str(p.get("parse_mode", "")).upper() == "HTML":
            try:
                text, entities = parse_html(text)
            except ValueError as exc:
                return _error(400, f"Bad Request: can't parse entities: {exc}")
        for message in state.messages.get(chat_id, []):
            if message["message_id"] == int(p["message_id"]) and message.get("from", {}).get("id") == BOT["id"]:
                if message["text"] == text and message.get("reply_markup") == p.get("reply_markup"):
                    return _error(400, "Bad Request: message is not modified")
                message["text"] = text
                message["entities"] = entities
                message["edit_date"] = int(time.time())
                if p.get("reply_markup"):
                    message["reply_markup"] = p["reply_markup"]
                else:
                    message.pop("reply_markup", None)
                async with state.changed:
                    state.changed.notify_all()
                return _ok(message)
        return _error(400, "Bad Request: message to edit not found")

    async def answer_callback_query(p):
        state.callback_answers.append(p)
        return _ok(True)

    METHODS = {
        "getme": get_me, "deletewebhook": delete_webhook, "getwebhookinfo": webhook_info, "setmycommands": set_my_commands,
        "getmycommands": get_my_commands, "getupdates": get_updates, "sendmessage": send_message,
        "editmessagetext": edit_message_text, "answercallbackquery": answer_callback_query,
        "sendchataction": true, "close": true, "logout": true, "setwebhook": set_webhook,
    }

    # -- control API for the tests ---------------------------------------------------------

    async def user_sends(request: Request):
        body = await request.json()
        chat_id = int(body["chat_id"])
        user = _user(int(body.get("user_id", chat_id if chat_id > 0 else 1)), body.get("first_name"))
        message = {"message_id": state.message_id(chat_id), "date": int(time.time()),
                   "chat": _chat(chat_id, body.get("chat_type")), "from": user}
        if "text" in body:
            message["text"] = body["text"]
            if body["text"].startswith("/"):
                command = body["text"].split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if "location" in body:
            message["location"] = body["location"]
        if "sticker" in body:
            message["sticker"] = {"file_id": "s1", "file_unique_id": "s1", "type": "regular", "width": 512,
                                  "height": 512, "is_animated": False, "is_video": False}
        if body.get("reply_to_message_id"):
            replied = next(m for m in state.messages.get(chat_id, [])
                           if m["message_id"] == int(body["reply_to_message_id"]))
            message["reply_to_message"] = dict(replied)
        state.messages.setdefault(chat_id, []).append(message)
        update = await state.push({"message": message})
        return JSONResponse({"update_id": update["update_id"], "message_id": message["message_id"]})

    async def user_presses(request: Request):
        body = await request.json()
        chat_id = int(body["chat_id"])
        user = _user(int(body.get("user_id", chat_id if chat_id > 0 else 1)), body.get("first_name"))
        message = next(m for m in state.messages.get(chat_id, []) if m["message_id"] == int(body["message_id"]))
        query = {"id": f"cb{state.next_update_id}", "from": user, "chat_instance": f"ci{chat_id}",
                 "message": dict(message), "data": body["data"]}
        update = await state.push({"callback_query": query})
        return JSONResponse({"update_id": update["update_id"], "callback_query_id": query["id"]})

    async def redeliver(request: Request):
        body = await request.json()
        update = dict(state.delivered[int(body["update_id"])])
        state.updates.append(update)
        async with state.changed:
            state.changed.notify_all()
        return JSONResponse({"update_id": update["update_id"]})

    async def fail(request: Request):
        body = await request.json()
        chat_id = int(body["chat_id"])
        if body.get("code"):
            state.failing[chat_id] = {"code": int(body["code"]), "retry_after": body.get("retry_after", 1),
                                      "delay": body.get("delay")}
        else:
            state.failing.pop(chat_id, None)
        return JSONResponse({"ok": True})

    async def attempts(request: Request):
        return JSONResponse(state.attempts.get(int(request.query_params["chat_id"]), []))

    async def messages(request: Request):
        chat_id = int(request.query_params["chat_id"])
        # Test-only field: when the server accepted each bot message (to explain a crash's duplicate).
        return JSONResponse([dict(m, _sent_at=state.sent_at[(chat_id, m["message_id"])])
                             if (chat_id, m["message_id"]) in state.sent_at else m
                             for m in state.messages.get(chat_id, [])])

    async def wait(request: Request):
        """Long-poll until a chat holds at least `count` bot messages (or `timeout` seconds pass)."""
        chat_id = int(request.query_params["chat_id"])
        count = int(request.query_params["count"])
        deadline = time.monotonic() + float(request.query_params.get("timeout", "30"))

        def bot_count() -> int:
            return sum(1 for m in state.messages.get(chat_id, []) if m.get("from", {}).get("id") == BOT["id"])

        while bot_count() < count and time.monotonic() < deadline:
            async with state.changed:
                try:
                    await asyncio.wait_for(state.changed.wait(), timeout=max(0.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    break
        return JSONResponse({"count": bot_count()})

    async def updates(request: Request):
        data = request.query_params.get("data")
        return JSONResponse([uid for uid, u in state.delivered.items()
                             if "callback_query" in u and u["callback_query"]["data"] == data])

    async def info(request: Request):
        return JSONResponse({"callback_answers": state.callback_answers, "commands": state.commands,
                             "webhook": state.webhook, "webhook_posts": state.webhook_posts[-500:],
                             "pending_updates": len(state.updates), "calls": state.calls[-200:]})

    routes = [
        Route("/bot{token}/{method}", method, methods=["GET", "POST"]),
        Route("/_test/send", user_sends, methods=["POST"]),
        Route("/_test/press", user_presses, methods=["POST"]),
        Route("/_test/redeliver", redeliver, methods=["POST"]),
        Route("/_test/fail", fail, methods=["POST"]),
        Route("/_test/messages", messages),
        Route("/_test/attempts", attempts),
        Route("/_test/info", info),
        Route("/_test/updates", updates),
        Route("/_test/wait", wait),
    ]
    return Starlette(routes=routes)


class BotApiServer(ThreadedServer):
    """The fake Bot API server on a free port of 127.0.0.1, in a thread with its own event loop."""

    def __init__(self, port: int = 0):
        self.state = BotApiState()
        super().__init__(build_app(self.state), port)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8081)
    args = parser.parse_args()
    uvicorn.run(build_app(BotApiState()), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
