"""A local stand-in for the WhatsApp Cloud API (Graph API) that records what it receives.

POST /{version}/{phone_number_id}/messages answers like the Graph API; a recipient can be
made to fail with Graph error codes (131047 window closed, 130429 rate limit, 500).
Control: GET /_test/sent, POST /_test/fail {"to", "code", "delay"?} (no code: recover).
"""

from __future__ import annotations

import asyncio
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.server import ThreadedServer


class GraphApiServer(ThreadedServer):
    """The fake Graph API on a free port of 127.0.0.1, in a thread."""

    def __init__(self) -> None:
        self.sent: list[dict] = []
        self.sent_at: list[float] = []  # when each of `sent` was accepted (a crash's duplicate is explained by it)
        self.failing: dict[str, int] = {}
        self.delay: dict[str, float] = {}  # recipient -> seconds before its (failing) answer: a slow Graph API
        self.auth: list[str] = []
        app = Starlette(routes=[
            Route("/{version}/{phone_id}/messages", self._messages, methods=["POST"]),
            Route("/_test/sent", self._sent),
            Route("/_test/fail", self._fail, methods=["POST"]),
        ])
        super().__init__(app)

    async def _messages(self, request: Request):
        body = await request.json()
        self.auth.append(request.headers.get("authorization", ""))
        to = body.get("to", "")
        if self.delay.get(to):
            await asyncio.sleep(self.delay[to])
        code = self.failing.get(to)
        if code:
            status = 500 if code == 500 else 400
            return JSONResponse({"error": {"message": f"fake error {code}", "type": "OAuthException", "code": code,
                                           "fbtrace_id": "F1"}}, status_code=status)
        if body.get("messaging_product") != "whatsapp" or body.get("type") not in ("text", "interactive", "template"):
            return JSONResponse({"error": {"message": "invalid parameter", "code": 100}}, status_code=400)
        self.sent.append(body)
        self.sent_at.append(time.time())
        wamid = f"wamid.OUT{len(self.sent)}"
        return JSONResponse({"messaging_product": "whatsapp", "contacts": [{"input": to, "wa_id": to}],
                             "messages": [{"id": wamid}]})

    async def _sent(self, request: Request):
        return JSONResponse(self.sent)

    async def _fail(self, request: Request):
        body = await request.json()
        if body.get("code"):
            self.failing[body["to"]] = int(body["code"])
            self.delay[body["to"]] = float(body.get("delay") or 0)
        else:
            self.failing.pop(body["to"], None)
            self.delay.pop(body["to"], None)
        return JSONResponse({"ok": True})
