"""Live content edits: validate, gate on the labelled set, then swap the whole snapshot at once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from bot.content.checks import check_content
from bot.core.content import Content
from bot.core.tasks import BackgroundTask
from bot.core.yamlfile import display_path

log = logging.getLogger(__name__)
WATCHED = ("intents", "responses", "data")


@dataclass(frozen=True, slots=True)
class ReloadResult:
    """What happened to an edit: live, or refused with the reasons (file:line)."""

    ok: bool
    message: str  # plain Indonesian, for the operators' chat
    problems: tuple[str, ...] = ()


class ContentReloader:
    """Keeps serving the last good content; a new version goes live only when it passes."""

    def __init__(self, root: Path, targets: list, gate_file: Path | None = None, gate_min_accuracy: float = 0.95,
                 notify=None):
        self.root = Path(root)
        self.targets = targets  # objects with a `content` attribute (assistant, staff desk)
        self.gate_file = Path(gate_file) if gate_file else None
        self.gate_min_accuracy = gate_min_accuracy
        self.notify = notify  # async callable(text): tells the operators' chat
        self._lock = asyncio.Lock()
        self._task = BackgroundTask("content-watch", self._watch)

    async def reload(self, reason: str = "perubahan berkas") -> ReloadResult:
        """Check the content on disk and swap it in if it passes everything."""
        async with self._lock:
            result = await asyncio.to_thread(self._build)
            if isinstance(result, ReloadResult):
                log.warning("content edit refused (%s): %s", reason, "; ".join(result.problems[:5]))
                if self.notify is not None:
                    await self.notify(result.message)
                return result
            content, accuracy = result
            for target in self.targets:
                target.content = content  # one assignment per holder: each message sees one snapshot
            gate = f"; akurasi uji {accuracy:.1%}" if accuracy is not None else ""
            log.info("content reloaded (%s): %d intents%s", reason, len(content.intents.intents), gate)
            return ReloadResult(True, f"Konten baru sudah aktif ({len(content.intents.intents)} intent{gate}).")

    def _build(self) -> tuple[Content, float | None] | ReloadResult:
        report = check_content(self.root, cross_validate=False)
        if report.errors or report.content is None:
            problems = tuple(str(p) for p in report.errors)
            shown = "\n".join(f"- {p}" for p in problems[:10])
            more = f"\n(dan {len(problems) - 10} masalah lain)" if len(problems) > 10 else ""
            return ReloadResult(False, "Perubahan konten MIA BELUM dipakai karena ada kesalahan. MIA tetap memakai "
                                       f"versi terakhir yang benar.\n{shown}{more}\nPerbaiki lalu simpan lagi; "
                                       "periksa dengan: mia intents check", problems)
        accuracy = None
        if self.gate_file is not None:
            from bot.core.assistant import Assistant
            from bot.content.evaluation import evaluate, load_cases

            result = evaluate(Assistant(report.content, store=None), load_cases(self.gate_file))
            accuracy = result.accuracy
            if accuracy < self.gate_min_accuracy or result.wrong_office:
                why = (f"akurasi pada {display_path(self.gate_file)} turun menjadi {accuracy:.1%} "
                       f"(batas {self.gate_min_accuracy:.0%})")
                if result.wrong_office:
                    why += f" dan {len(result.wrong_office)} jawaban menyebut kantor yang salah"
                confusions = [f"{c['expected']} -> {c['got']}: \"{c['examples'][0]}\"" for c in result.confusions[:5]]
                return ReloadResult(False, f"Perubahan konten MIA BELUM dipakai: {why}. MIA tetap memakai versi "
                                           "terakhir yang benar.\nContoh kekeliruan:\n" +
                                           "\n".join(f"- {c}" for c in confusions), (why, *confusions))
        return report.content, accuracy

    def start_watching(self) -> None:
        """Reload within seconds of any change under intents/, responses/ or data/."""
        self._task.start()

    async def stop(self) -> None:
        await self._task.stop()

    async def _watch(self) -> None:
        from watchfiles import awatch

        paths = [self.root / name for name in WATCHED if (self.root / name).exists()]
        async for changes in awatch(*paths, debounce=800, step=100):
            names = sorted({display_path(Path(p)) for _, p in changes})
            try:
                await self.reload("berkas berubah: " + ", ".join(names[:5]))
            except Exception:  # noqa: BLE001 - a failed reload must never stop the watcher
                log.exception("content reload failed")
