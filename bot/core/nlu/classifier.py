"""One model over what a message looks like and what it means: intent probabilities.

Features, each block of unit length: pieces of words (character 2-5-grams inside " word "), words
and pairs of words (TF-IDF, sublinear), and the sentence vector of the message as written. A
multinomial logistic regression (scikit-learn) trained on the intents' examples, their keywords
and titles gives calibrated probabilities. Training happens when the content changes; the
weights are cached on disk by a hash of everything that went into them, so a restart loads
them in milliseconds. scikit-learn fits the weights in a separate, short-lived process (about
100 MB that a serving process would otherwise keep for good); predicting is numpy alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import io
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from bot.core.nlu.embedding import Embedder, VectorCache

log = logging.getLogger(__name__)

MODEL_FORMAT = 1  # bump when the features or the file change: old cache files are then ignored
KEEP_MODELS = 16  # trained models kept in the cache folder (the newest)
# Fit in a child process so that scikit-learn and SciPy never stay resident in `mia run`. Batch tools
# that train many models (the benchmarks' cross-validation) set this to False and pay the import once.
FIT_IN_CHILD_PROCESS = True


@dataclass(frozen=True, slots=True)
class ClassifierConfig:
    """How the model is built. Chosen by cross-validation (docs/benchmarks.md), never by hand."""

    c: float = 10.0  # inverse regularisation of the logistic regression
    char_min: int = 2  # word pieces from this many characters...
    char_max: int = 5  # ...to this many
    word_max: int = 2  # words and pairs of words
    min_count: int = 2  # a word piece must occur in this many training texts to be a feature
    # The sentence vector's scale beside the unit-length lexical blocks. The examples' CV prefers 2 (93.8% against
    # 92.5%), but that sharper model answers the public more wrongly at any threshold that keeps the labelled
    # set's answers (docs/benchmarks.md, "Tried on 2026-12-07 (fourth sitting)").
    semantic_weight: float = 1.0


@dataclass(frozen=True, slots=True)
class TrainingItem:
    """One thing the model learns from: the text as MIA reads it, as written, and its intent."""

    lexical: str  # normalized: places masked, slang expanded, typos corrected
    raw: str  # as written: what the sentence model reads
    label: str


def _grams(text: str, config: ClassifierConfig) -> tuple[Counter, Counter]:
    """Word pieces and words/pairs of one normalized text."""
    words = text.split()
    pieces: Counter = Counter()
    for w in words:
        padded = f" {w} "
        for n in range(config.char_min, config.char_max + 1):
            if len(padded) < n:
                break
            pieces.update(padded[i:i + n] for i in range(len(padded) - n + 1))
    tokens: Counter = Counter(words)
    for n in range(2, config.word_max + 1):
        tokens.update(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    return pieces, tokens


class TextFeatures:
    """The lexical blocks: a vocabulary with IDF weights, learned from the training texts."""

    def __init__(self, vocab: dict[str, int], idf: np.ndarray, config: ClassifierConfig):
        self.vocab = vocab
        self.idf = idf
        self.config = config

    @classmethod
    def fit(cls, texts: Sequence[str], config: ClassifierConfig) -> "TextFeatures":
        df: Counter = Counter()
        for text in texts:
            pieces, tokens = _grams(text, config)
            df.update("c" + g for g in pieces)
            df.update("w" + g for g in tokens)
        names = sorted(f for f, n in df.items() if n >= config.min_count or f[0] == "w")
        n = len(texts)
        idf = np.array([math.log((1 + n) / (1 + df[f])) + 1.0 for f in names], dtype=np.float32)
        return cls({f: i for i, f in enumerate(names)}, idf, config)

    @property
    def size(self) -> int:
        return len(self.vocab)

    def transform(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(feature indices, values) of one text; unknown grams are skipped."""
        idx: list[int] = []
        val: list[float] = []
        for prefix, counts in zip("cw", _grams(text, self.config)):
            start = len(idx)
            for gram, count in counts.items():
                j = self.vocab.get(prefix + gram)
                if j is not None:
                    idx.append(j)
                    val.append((1.0 + math.log(count)) * float(self.idf[j]))
            norm = math.sqrt(sum(v * v for v in val[start:]))
            if norm:
                val[start:] = [v / norm for v in val[start:]]
        return np.array(idx, dtype=np.intp), np.array(val, dtype=np.float32)


class IntentClassifier:
    """Probabilities over intents (and the out-of-scope class) for messages."""

    def __init__(self, features: TextFeatures, weights: np.ndarray, bias: np.ndarray, classes: tuple[str, ...],
                 vectors: Callable[[Sequence[str]], np.ndarray] | None, config: ClassifierConfig):
        self.features = features
        self.weights = weights  # (lexical features + vector size, classes)
        self.bias = bias
        self.classes = classes
        self.vectors = vectors  # raw texts -> sentence vectors; None: lexical signals alone
        self.config = config
        self._n_lex = features.size

    def probabilities(self, lexical: Sequence[str], raw: Sequence[str],
                      semantic: np.ndarray | None = None) -> np.ndarray:
        """(len(texts), classes): each row sums to 1. `semantic`: the raw texts' vectors, if known."""
        logits = np.tile(self.bias, (len(lexical), 1))
        for row, text in enumerate(lexical):
            idx, val = self.features.transform(text)
            if len(idx):
                logits[row] += val @ self.weights[idx]
        if self.vectors is not None and len(raw):
            if semantic is None:
                semantic = self.vectors(list(raw))
            logits += (semantic * self.config.semantic_weight) @ self.weights[self._n_lex:]
        logits -= logits.max(axis=1, keepdims=True)
        np.exp(logits, out=logits)
        return logits / logits.sum(axis=1, keepdims=True)

    # -- training -------------------------------------------------------------------------

    @classmethod
    def train(cls, items: Sequence[TrainingItem], embedder: Embedder | None, cache_dir: Path | None,
              config: ClassifierConfig = ClassifierConfig(), vectors: VectorCache | None = None,
              message_vectors: Callable[[Sequence[str]], np.ndarray] | None = None,
              progress: Callable[[str, int, int], None] | None = None,
              child_process: bool | None = None) -> "IntentClassifier":
        """Train on `items`, or load the weights cached for exactly these items and settings.

        `child_process` (default FIT_IN_CHILD_PROCESS): fit in a short-lived child process."""
        key = cls._key(items, embedder, config)
        path = Path(cache_dir) / f"intents-{key[:24]}.npz" if cache_dir else None
        if path is not None and path.exists():
            loaded = cls._load(path, message_vectors, config)
            if loaded is not None:
                return loaded
        started = time.perf_counter()
        features = TextFeatures.fit([it.lexical for it in items], config)
        semantic = None
        if embedder is not None:
            cache = vectors or VectorCache(cache_dir, embedder)
            semantic = cache.vectors([it.raw for it in items],
                                     progress=(lambda d, t: progress("embed", d, t)) if progress else None)
        weights, bias, classes = cls._fit(features, [it.lexical for it in items], semantic,
                                          [it.label for it in items], config,
                                          FIT_IN_CHILD_PROCESS if child_process is None else child_process)
        log.info("intent model trained on %d texts in %.1f s", len(items), time.perf_counter() - started)
        model = cls(features, weights, bias, classes, message_vectors if embedder is not None else None, config)
        if path is not None:
            model._save(path)
        return model

    @staticmethod
    def _key(items: Sequence[TrainingItem], embedder: Embedder | None, config: ClassifierConfig) -> str:
        h = hashlib.sha256()
        h.update(json.dumps([MODEL_FORMAT, asdict(config), embedder.name if embedder else None]).encode())
        for it in items:
            h.update(json.dumps([it.lexical, it.raw, it.label]).encode())
        return h.hexdigest()

    @staticmethod
    def _fit(features: TextFeatures, texts: Sequence[str], semantic: np.ndarray | None, labels: Sequence[str],
             config: ClassifierConfig, child_process: bool) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
        rows, cols, vals = [], [], []
        for r, text in enumerate(texts):
            idx, val = features.transform(text)
            rows.extend([r] * len(idx))
            cols.extend(idx.tolist())
            vals.extend(val.tolist())
        problem = _Problem(np.asarray(rows, dtype=np.int32), np.asarray(cols, dtype=np.int32),
                           np.asarray(vals, dtype=np.float64), (len(texts), features.size),
                           None if semantic is None else semantic.astype(np.float64) * config.semantic_weight,
                           tuple(labels), config.c)
        if child_process:
            try:
                return _solve_in_child(problem)
            except (OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:  # e.g. no processes allowed
                log.warning("fitting the intent model in a child process failed (%s): fitting here", exc)
        return _solve(problem)

    def _save(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            names = sorted(self.features.vocab, key=self.features.vocab.get)
            np.savez(tmp, vocab=np.array(names), idf=self.features.idf, weights=self.weights, bias=self.bias,
                     classes=np.array(self.classes), semantic=np.array(self.vectors is not None))
            os.replace(tmp, path)
            models = sorted(path.parent.glob("intents-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
            for old in models[KEEP_MODELS:]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot write the intent model cache %s: %s", path, exc)

    @classmethod
    def _load(cls, path: Path, message_vectors, config: ClassifierConfig) -> "IntentClassifier | None":
        try:
            with np.load(path, allow_pickle=False) as data:
                vocab = {str(f): i for i, f in enumerate(data["vocab"])}
                features = TextFeatures(vocab, data["idf"], config)
                model = cls(features, data["weights"], data["bias"], tuple(str(c) for c in data["classes"]),
                            message_vectors if bool(data["semantic"]) else None, config)
            os.utime(path)  # recently used: kept by the pruning above
            return model
        except (OSError, ValueError, KeyError) as exc:
            log.warning("intent model cache %s unreadable (%s): training again", path, exc)
            return None


@dataclass(frozen=True, slots=True)
class _Problem:
    """What the logistic regression is fitted on, in plain arrays (sent to the child process)."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    shape: tuple[int, int]
    semantic: np.ndarray | None  # already scaled by the config's semantic weight
    labels: tuple[str, ...]
    c: float


def _solve(p: _Problem) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Fit the multinomial logistic regression: (weights features x classes, bias, classes)."""
    from scipy.sparse import csr_matrix, hstack  # training only: a serving process never imports them
    from sklearn.linear_model import LogisticRegression

    x = csr_matrix((p.vals, (p.rows, p.cols)), shape=p.shape, dtype=np.float64)
    if p.semantic is not None:
        x = hstack([x, csr_matrix(p.semantic)]).tocsr()
    # Newton-CG: a few exact steps; L-BFGS spends seconds on its own bookkeeping at this size.
    clf = LogisticRegression(C=p.c, class_weight="balanced", solver="newton-cg", tol=1e-3, max_iter=500)
    clf.fit(x, list(p.labels))
    classes = tuple(str(c) for c in clf.classes_)
    weights = clf.coef_.T.astype(np.float32)
    bias = clf.intercept_.astype(np.float32)
    if len(classes) == 2:  # binary: scikit-learn keeps one row; make it a softmax over two
        weights = np.hstack([-weights / 2, weights / 2])
        bias = np.array([-bias[0] / 2, bias[0] / 2], dtype=np.float32)
    return np.ascontiguousarray(weights), bias, classes


def _solve_in_child(p: _Problem) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """`_solve` in `python -m bot.core.nlu.classifier`: the problem in on stdin, the weights out on stdout."""
    sent = io.BytesIO()
    semantic = {} if p.semantic is None else {"semantic": p.semantic}
    np.savez(sent, rows=p.rows, cols=p.cols, vals=p.vals, shape=np.array(p.shape), labels=np.array(p.labels),
             c=np.array(p.c), **semantic)
    done = subprocess.run([sys.executable, "-m", __name__], input=sent.getvalue(), capture_output=True, check=False)
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        raise subprocess.SubprocessError(said[-1] if said else f"exit code {done.returncode}")
    with np.load(io.BytesIO(done.stdout), allow_pickle=False) as data:
        return data["weights"], data["bias"], tuple(str(c) for c in data["classes"])


def _child_main() -> None:
    with np.load(io.BytesIO(sys.stdin.buffer.read()), allow_pickle=False) as data:
        problem = _Problem(data["rows"], data["cols"], data["vals"], tuple(int(n) for n in data["shape"]),
                           data["semantic"] if "semantic" in data else None,
                           tuple(str(x) for x in data["labels"]), float(data["c"]))
    weights, bias, classes = _solve(problem)
    out = io.BytesIO()
    np.savez(out, weights=weights, bias=bias, classes=np.array(classes))
    sys.stdout.buffer.write(out.getvalue())


if __name__ == "__main__":
    _child_main()
