"""Abuse limits of the web chat: who the client is (behind a trusted proxy only), how much it may
ask for, and a guard on the store's size. In memory for one worker; counted in the database
(SharedRateLimiter) when several workers share it."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import time
from array import array
from collections import OrderedDict
from typing import Awaitable, Callable

log = logging.getLogger(__name__)

TOO_MANY = ("Terlalu banyak permintaan dari alamat Anda. Silakan coba lagi beberapa menit lagi.\n"
            "Too many requests from your address. Please try again in a few minutes.")
STORE_FULL = ("Maaf, obrolan web sedang tidak menerima percakapan baru. Silakan coba lagi nanti atau hubungi "
              "kantor imigrasi melalui saluran resminya.\n"
              "Sorry, the web chat is not taking new conversations right now. Please try again later or contact "
              "the immigration office through its official channels.")


def _ip(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def client_address(peer: str | None, forwarded_for: str | None, trusted) -> str:
    """The address a limit applies to. X-Forwarded-For counts only when the connection comes from a
    trusted proxy, and then its last address that is not itself a trusted proxy (what each proxy
    appended; whatever the client wrote itself stands further left and is not believed)."""
    peer = peer or "unknown"
    peer_ip = _ip(peer)
    if not forwarded_for or peer_ip is None or not any(peer_ip in net for net in trusted):
        return peer
    for part in reversed(forwarded_for.split(",")):
        ip = _ip(part)
        if ip is None:
            return peer  # a malformed chain: the proxy is what we know
        if not any(ip in net for net in trusted):
            return str(ip)
    return peer


class RateLimiter:
    """At most `limit` events per address in any `window` seconds (a sliding window). Memory is
    bounded: at most `max_addresses` are remembered (the least recently seen are forgotten first,
    which costs a flood nothing it would not get from a fresh address anyway), each with at most
    `limit` times in a compact array."""

    def __init__(self, limit: int, window: float = 60.0, max_addresses: int = 10_000, clock=time.monotonic):
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self.clock = clock
        self._seen: OrderedDict[str, array] = OrderedDict()

    def allow(self, address: str) -> bool:
        """Count an event of `address`; False (not counted) when it is over its limit."""
        if self.limit <= 0:
            return True
        now = self.clock()
        times = self._seen.get(address)
        if times is None:
            times = self._seen[address] = array("d")
            while len(self._seen) > self.max_addresses:
                self._seen.popitem(last=False)
        else:
            self._seen.move_to_end(address)
        expired = 0
        while expired < len(times) and now - times[expired] >= self.window:
            expired += 1
        if expired:
            del times[:expired]
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True

    async def admit(self, address: str) -> bool:
        """allow(), as the web chat asks every limiter."""
        return self.allow(address)


class SharedRateLimiter:
    """At most `limit` events per address in any `window` seconds, counted in the store: the same
    limit whichever worker behind the load balancer the address reaches. The count is that of the
    current fixed window plus the previous window's, weighted by how much of it still lies within
    the last `window` seconds (a sliding window, estimated). Addresses are kept hashed, for two
    windows. An address over its limit is remembered here for a while, so a flood costs the
    database nothing once refused."""

    def __init__(self, store, kind: str, limit: int, window: float = 60.0, max_addresses: int = 10_000,
                 clock=time.time):
        self.store = store
        self.kind = kind
        self.limit = limit
        self.window = window
        self.max_addresses = max_addresses
        self.clock = clock
        self._refused: OrderedDict[str, float] = OrderedDict()  # address -> until when it is refused here

    async def admit(self, address: str) -> bool:
        """Count an event of `address` in the store; False when it is over its limit."""
        if self.limit <= 0:
            return True
        now = self.clock()
        until = self._refused.get(address)
        if until is not None:
            if now < until:
                return False
            del self._refused[address]
        key = hashlib.sha256(f"{self.kind} {address}".encode("utf-8", "surrogatepass")).hexdigest()[:32]
        start = now - now % self.window
        current, previous = await self.store.count_hit(key, start, self.window)
        if previous * (1 - (now - start) / self.window) + current <= self.limit:
            return True
        # Refused until a few events have left the sliding window (at most the rest of this one).
        self._refused[address] = min(start + self.window, now + self.window / max(self.limit, 1))
        while len(self._refused) > self.max_addresses:
            self._refused.popitem(last=False)
        return False


class StoreGuard:
    """Is the database (with its WAL) past `max_bytes`? Checked at most every `interval` seconds.
    Crossing the line calls `notify` once (again only after it fell back below)."""

    def __init__(self, path: str, max_bytes: int, notify: Callable[[str], Awaitable[None]] | None = None,
                 interval: float = 2.0, clock=time.monotonic):
        self.path = str(path)
        self.max_bytes = max_bytes
        self.notify = notify
        self.interval = interval
        self.clock = clock
        self._checked = float("-inf")
        self._full = False

    def size(self) -> int:
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(self.path + suffix).st_size
            except OSError:
                pass
        return total

    async def full(self) -> bool:
        if self.max_bytes <= 0:
            return False
        now = self.clock()
        if now - self._checked < self.interval:
            return self._full
        self._checked = now
        size = self.size()
        was, self._full = self._full, size > self.max_bytes
        if self._full and not was:
            text = (f"Database MIA {size / 1e6:.1f} MB, di atas batas MIA_STORE_MAX_MB "
                    f"({self.max_bytes / 1e6:.1f} MB): obrolan web tidak menerima sesi baru; percakapan yang "
                    f"berjalan, Telegram dan WhatsApp tetap jalan. Periksa disk dan `mia db purge`.\n"
                    f"MIA's database is {size / 1e6:.1f} MB, past MIA_STORE_MAX_MB: the web chat refuses new "
                    f"sessions; ongoing chats, Telegram and WhatsApp keep working.")
            log.warning("store past its size limit: %d bytes > %d; new web sessions refused", size, self.max_bytes)
            if self.notify is not None:
                try:
                    await self.notify(text)
                except Exception:  # noqa: BLE001 - the guard must hold even if the notice fails
                    log.exception("could not tell the operators that the store is full")
        elif was and not self._full:
            log.warning("store back under its size limit: new web sessions accepted again")
        return self._full
