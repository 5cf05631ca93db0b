"""Which store a setting names: a postgresql:// URL gives PostgresStore, anything else a SQLite file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bot.store.base import Store

SCHEMES = ("postgresql://", "postgres://")


def is_postgres(url_or_path: str | Path) -> bool:
    """True for a PostgreSQL URL (postgresql://... or postgres://...)."""
    return str(url_or_path).startswith(SCHEMES)


def store_for(url_or_path: str | Path, worker: str = "mia") -> Store:
    """PostgresStore for a postgresql:// or postgres:// URL, SQLiteStore for anything else (a file
    path, or ":memory:"), holding leases as `worker`. Not opened yet."""
    if is_postgres(url_or_path):
        from bot.store.postgres import PostgresStore

        return PostgresStore(str(url_or_path), worker=worker)
    from bot.store.sqlite import SQLiteStore

    return SQLiteStore(url_or_path, worker=worker)


def shown(url_or_path: str | Path) -> str:
    """The database as a log line may name it: a URL without its password (or query string)."""
    if not is_postgres(url_or_path):
        return str(url_or_path)
    parts = urlsplit(str(url_or_path))
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
