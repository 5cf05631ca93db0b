"""Background tasks of a running MIA: started once, cancelled and awaited on stop; locks per chat."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager
from typing import AsyncIterator, Awaitable, Callable, Hashable

log = logging.getLogger(__name__)

# How long a stop lets work in hand (a send, an update) finish before cancelling it.
STOP_GRACE_SECONDS = 1.0


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait until `event` is set or `timeout` seconds pass; True when it was set.

    Not `asyncio.wait_for`: on Python 3.11 it swallows a cancellation that arrives as the
    event is set (the task goes on running), which is how a busy outbox worker once ignored
    SIGTERM. `asyncio.timeout` passes every cancellation on.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
        return True
    except TimeoutError:
        return event.is_set()


async def finish(tasks, grace: float = STOP_GRACE_SECONDS) -> None:
    """Let tasks finish for `grace` seconds, then cancel the rest and wait for them to end."""
    tasks = {t for t in tasks if not t.done()}
    if tasks:
        await asyncio.wait(tasks, timeout=grace)
    await cancel(tasks)


async def cancel(tasks) -> None:
    """Cancel tasks and wait until each has ended, cancelling again any that swallowed it."""
    tasks = set(tasks)
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=1.0)
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s ended with an error", task.get_name(), exc_info=task.exception())


class BackgroundTask:
    """One named asyncio task around a coroutine function."""

    def __init__(self, name: str, run: Callable[[], Awaitable[None]]):
        self.name = name
        self.run = run
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended (cancelling again if a cancellation was
        swallowed somewhere inside it)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel({task})


class KeyedLocks:
    """One lock per key (a chat): holders of one key go one after another, in the order they came,
    other keys meanwhile. A key's lock is kept only while somebody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, list] = {}  # key -> [lock, holders and waiters]

    def __contains__(self, key: Hashable) -> bool:
        """Whether somebody holds or waits for the key's lock."""
        return key in self._locks

    @asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]
