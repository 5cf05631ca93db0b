"""Two and three workers on one PostgreSQL, one SIGKILLed at MIA_WORKER_KILLS (default 100) seeded
moments while citizens fill Lapor Rakit requests over Telegram's webhook (tests/test_workers.py
has the cluster, the checks and a quick version for `make test`)."""

from __future__ import annotations

import os

import pytest

from tests.test_workers import run_kills

pytestmark = pytest.mark.reliability

KILLS = int(os.environ.get("MIA_WORKER_KILLS", "100"))


@pytest.mark.parametrize("workers", [2, 3])
async def test_workers_killed_at_random_moments_lose_nothing(tmp_path, workers):
    print("\n" + await run_kills(tmp_path, workers, kills=KILLS, citizens_n=8), flush=True)
