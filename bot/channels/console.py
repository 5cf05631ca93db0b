"""The console channel of `mia chat`: a terminal conversation through the same path as `mia run`
(the rate limit, replies committed to the outbox and sent in order, staff replies arriving)."""

from __future__ import annotations

import asyncio
import itertools
import sys
import uuid
from typing import Callable, TextIO

from bot.channels.delivery import LeasedReplies
from bot.core.messages import Incoming, Reply, option_number, reply_of
from bot.core.tasks import BackgroundTask

CHANNEL = "console"
EXIT = ("/keluar", "/exit", "/quit")


def render(reply: Reply) -> str:
    """A reply as the terminal shows it: the text, then numbered buttons a digit picks."""
    lines = [reply.text.replace("*", "")]
    for n, b in enumerate((b for b in reply.buttons if b.says), 1):
        lines.append(f"  [{n}] {b.title}")
    return "\n".join(lines)


class ConsoleSender:
    """Prints what the outbox delivers to the console chat; remembers the buttons a digit picks."""

    def __init__(self, out: TextIO):
        self.out = out
        self.buttons: tuple = ()
        self._ids = itertools.count(1)

    async def send(self, chat_id: str, payload: dict) -> str | None:
        reply = reply_of(payload)
        print(render(reply), file=self.out, flush=True)
        self.buttons = tuple(b for b in reply.buttons if b.says)
        return str(next(self._ids))


class ConsoleChannel:
    """Reads the citizen's lines from stdin; `on_end` is called at end of input or /keluar."""

    name = CHANNEL

    def __init__(self, assistant, chat_id: str, on_queue=None, on_end: Callable[[], None] | None = None,
                 stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.chat_id = chat_id
        self.stdin = stdin or sys.stdin
        self.sender = ConsoleSender(stdout or sys.stdout)
        self.replies = LeasedReplies(assistant, self.sender, CHANNEL, on_queue)
        self.on_end = on_end
        self._reader = BackgroundTask("console", self._read)

    async def start(self) -> None:
        self._reader.start()

    async def stop(self) -> None:
        await self._reader.stop()
        await self.replies.wait()

    async def _read(self) -> None:
        interactive = self.stdin.isatty()
        out = self.sender.out
        if interactive:
            print("MIA siap. Ketik pertanyaan Anda (angka untuk memilih tombol, /keluar untuk berhenti).", file=out)
        try:
            while True:
                if interactive:
                    print("> ", end="", file=out, flush=True)
                line = await asyncio.to_thread(self.stdin.readline)
                if not line or line.strip() in EXIT:
                    break
                text = line.rstrip("\n")
                number = option_number(text, len(self.sender.buttons))
                if number is not None:
                    text = self.sender.buttons[number - 1].payload
                await self.replies.answer(Incoming(CHANNEL, self.chat_id, text, uuid.uuid4().hex))
                await self.replies.wait(timeout=60)  # the answer is printed before the next line is read
                if not interactive:
                    print(file=out, flush=True)
        finally:
            if self.on_end is not None:
                self.on_end()
