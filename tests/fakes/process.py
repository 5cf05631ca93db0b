"""`mia run` as a child process of a test: started, killed with SIGKILL (as a crash), started again."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

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
