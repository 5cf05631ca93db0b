"""A round-robin HTTP load balancer for tests (what nginx or a cloud balancer does in front of workers).

Each request goes to the next worker in turn; a worker that refuses the connection (stopped, or
killed) is skipped for the next one, as nginx's `proxy_next_upstream error` does. The client's
address is appended to X-Forwarded-For.
"""

from __future__ import annotations

import itertools

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import ThreadedServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}


class Balancer(ThreadedServer):
    """Listens on a free port of 127.0.0.1 and spreads requests over `upstreams` (base URLs)."""

    def __init__(self, upstreams: list[str]):
        self.upstreams = list(upstreams)
        self.served: list[tuple[str, str, int]] = []  # (upstream, path, status)
        self._turn = itertools.count()
        self._http: httpx.AsyncClient | None = None
        super().__init__(Starlette(routes=[Route("/{path:path}", self._forward,
                                                 methods=["GET", "POST", "PUT", "DELETE"])]))

    async def _forward(self, request: Request) -> Response:
        body = await request.body()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        peer = request.client.host if request.client else "127.0.0.1"
        headers["x-forwarded-for"] = ", ".join(filter(None, [request.headers.get("x-forwarded-for"), peer]))
        start = next(self._turn)
        if self._http is None:  # made in the server's own event loop, kept: connections are reused
            self._http = httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=None,
                                                                            max_keepalive_connections=200))
        http = self._http
        for k in range(len(self.upstreams)):
            upstream = self.upstreams[(start + k) % len(self.upstreams)]
            try:
                r = await http.request(request.method, upstream + request.url.path, params=request.query_params,
                                       content=body, headers=headers)
            except httpx.ConnectError:
                continue  # that worker is down: the next one
            except httpx.HTTPError:  # it died with the request in hand: not sent again (not idempotent)
                self.served.append((upstream, request.url.path, 502))
                return Response(b"the worker did not answer", status_code=502)
            self.served.append((upstream, request.url.path, r.status_code))
            response = Response(r.content, status_code=r.status_code)
            response.raw_headers.extend((k.lower().encode("latin-1"), v.encode("latin-1"))
                                        for k, v in r.headers.multi_items()
                                        if k.lower() not in HOP_BY_HOP | {"content-encoding"})
            return response
        return Response(b"no worker answered", status_code=502)
