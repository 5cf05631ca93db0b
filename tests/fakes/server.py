"""Run an ASGI app with uvicorn on a free port of 127.0.0.1, in a thread with its own event loop."""

from __future__ import annotations

import threading
import time

import uvicorn


class ThreadedServer:
    """A real HTTP server for tests: start() returns once it listens; stop() joins the thread."""

    def __init__(self, app, port: int = 0):
        # A long keep-alive: a test client reusing a pooled connection must not race the server
        # closing it ("Server disconnected without sending a response").
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                timeout_keep_alive=300)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"{type(self).__name__} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
