"""Background tasks of a running MIA: started once, cancelled and awaited on stop."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable


class BackgroundTask:
    """One named asyncio task around a coroutine function."""

    def __init__(self, name: str, run: Callable[[], Awaitable[None]]):
        self.name = name
        self.run = run
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=self.name)

    async def stop(self) -> None:
        """Cancel the task and wait until it has ended."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None
