"""`mia run` as a child process of a test: started, killed with SIGKILL (as a crash), started again."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, mia_command


class MiaProcess:
    """One `mia run` with the given environment, its output appended to `log`."""

    def __init__(self, env: dict, log: Path):
        self.env = env
        self.log = open(log, "a", encoding="utf-8")
        self.proc: subprocess.Popen | None = None
        self.kills: list[float] = []  # when each SIGKILL was sent

    def start(self) -> None:
        self.proc = subprocess.Popen(mia_command() + ["run"], cwd=ROOT, env=self.env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    async def ready(self, port: int, timeout: float = 180.0) -> None:
        """Until it answers /healthz on `port` (a cold start trains the intent model first); fails
        at once if the process exited."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                assert self.proc.poll() is None, f"mia run exited with {self.proc.returncode}"
                assert time.monotonic() < deadline, f"mia run not ready within {timeout:.0f} s"
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.kills.append(time.time())
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM, as a supervisor stops it; its exit code."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.log.close()
