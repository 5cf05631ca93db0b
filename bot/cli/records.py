"""Office records and operators' reports: mia requests, report, review, db migrate, db purge."""

from __future__ import annotations

import asyncio
import os
import sys


# -- requests -----------------------------------------------------------------------------

EXPORT_COLUMNS = ("ref", "office", "region", "status", "created", "applicant_name", "relation", "phone", "address",
                  "place", "condition", "preferred_day", "channel", "claimed_by", "claimed_at", "done_by", "done_at")


async def _load_requests(settings, office, status):
    return await _with_store(settings, lambda store: store.list_requests(office=office, status=status))


def _when(ts: float | None) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else ""


def _cmd_requests_list(args, settings) -> int:
    requests = asyncio.run(_load_requests(settings, args.office, args.status))
    if not requests:
        print("Tidak ada permintaan. / No requests.")
        return 0
    print(f"{'ref':<16} {'office':<10} {'status':<8} {'created':<16} {'applicant':<24} place")
    for r in requests:
        print(f"{r.ref:<16} {r.office:<10} {r.status:<8} {_when(r.created_at):<16} "
              f"{r.fields.get('applicant_name', '')[:24]:<24} {r.fields.get('place', '')}")
    print(f"{len(requests)} request(s)")
    return 0


def _cmd_requests_export(args, settings) -> int:
    from bot.content.csvfile import private_csv

    requests = asyncio.run(_load_requests(settings, args.office, args.status))
    # Health and contact data: the file is readable by its owner only.
    with private_csv(args.csv) as writer:
        writer.writerow(EXPORT_COLUMNS)
        for r in requests:
            row = {"ref": r.ref, "office": r.office, "region": r.region, "status": r.status,
                   "created": _when(r.created_at), "channel": r.channel, "claimed_by": r.claimed_by or "",
                   "claimed_at": _when(r.claimed_at), "done_by": r.done_by or "", "done_at": _when(r.done_at),
                   **{k: r.fields.get(k, "") for k in EXPORT_COLUMNS if k in r.fields}}
            writer.writerow([row.get(c, "") for c in EXPORT_COLUMNS])
    print(f"{len(requests)} request(s) written to {args.csv}")
    return 0


# -- reports and maintenance -------------------------------------------------------------


async def _with_store(settings, work):
    from bot.store.open import store_for

    store = store_for(settings.database)
    await store.open()
    try:
        return await work(store)
    finally:
        await store.close()


def _since_and_content(args, settings):
    """(--since as a timestamp, the content) for the review commands; None after printing a bad --since
    or an unknown --office (a typo would show an empty log as if nothing were unanswered)."""
    from bot.content.reports import since_timestamp
    from bot.core.content import Content

    try:
        since = since_timestamp(args.since)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
    content = Content.load(settings.mia_content_dir, progress=_stage_progress())
    offices = [o.id for o in content.knowledge.offices]
    if getattr(args, "office", None) and args.office not in offices:
        print(f"error: kantor '{args.office}' tidak dikenal / unknown office; pilih / choose: {', '.join(offices)}",
              file=sys.stderr)
        return None
    return since, content


def _cmd_report_unanswered(args, settings) -> int:
    from bot.content.review import describe, groups_to_review

    loaded = _since_and_content(args, settings)
    if loaded is None:
        return 2
    since, content = loaded
    rows = asyncio.run(_with_store(settings, lambda store: store.unanswered_since(since, args.office)))
    groups = groups_to_review(rows, content)
    print(f"{len(rows)} pertanyaan tak terjawab dalam {args.since} / unanswered questions, {len(groups)} kelompok / groups")
    for n, g in enumerate(groups, 1):
        print(f"{n:>3}. {g.count:>4}x  \"{g.example}\"  -> terdekat/nearest: {g.nearest_intent or '-'}  ({describe(g)})")
    if args.csv:
        from bot.content.csvfile import private_csv

        with private_csv(args.csv) as w:  # citizens' words: owner only
            w.writerow(["count", "example", "nearest_intent", "offices", "texts"])
            for g in groups:
                w.writerow([g.count, g.example, g.nearest_intent or "", " ".join(f"{k}:{v}" for k, v in g.offices.items()),
                            " | ".join(g.texts[:20])])
        print(f"CSV: {args.csv}")
    return 0


def _cmd_review(args, settings) -> int:
    from bot.content.checks import check_content
    from bot.content.review import confirm, describe, drop, groups_to_review, suggest

    loaded = _since_and_content(args, settings)
    if loaded is None:
        return 2
    since, content = loaded
    titles = {it.id: it.title["id"] for it in content.intents.intents}
    by = f"operator:{os.environ.get('USER', 'console')}"
    checked = lambda root: check_content(root, cross_validate=False)  # noqa: E731 - the edit's gate

    async def run(store) -> int:
        rows = await store.review_items(since=since, office=args.office)
        groups = groups_to_review(rows, content)
        print(f"{len(rows)} pesan untuk ditinjau / messages to review, {len(groups)} kelompok / groups")
        for n, group in enumerate(groups, 1):
            s = suggest(group, content)
            print(f"\n[{n}/{len(groups)}] {group.count}x ({describe(group)})\n  \"{group.example}\"")
            for other in list(dict.fromkeys(group.texts[1:]))[:3]:
                print(f"    juga / also: \"{other}\"")
            print(f"  Saran / suggestion: {s.intent or '-'} ({titles.get(s.intent, '-')}): {s.why}")
            if args.list:
                continue
            while True:
                key = _ask("  [y] tambah sebagai contoh / add as example  [c] intent lain / other intent  "
                           "[d] buang / drop  [s] lewati / skip  [q] keluar / quit > ")
                if key == "y" and s.intent:
                    print("  " + await confirm(store, settings.mia_content_dir, group, s.intent, by, checked))
                elif key == "c":
                    intent = _pick_intent(content)
                    if intent is None:
                        continue
                    print("  " + await confirm(store, settings.mia_content_dir, group, intent, by, checked))
                elif key == "d":
                    print("  " + await drop(store, group, by))
                elif key in ("s", ""):
                    pass
                elif key in ("q", None):
                    return 0
                else:
                    continue
                break
        return 0

    return asyncio.run(_with_store(settings, run))


def _ask(prompt: str) -> str | None:
    """One answer from the operator; None at the end of input."""
    try:
        return input(prompt).strip().lower()
    except EOFError:
        return None


def _pick_intent(content) -> str | None:
    """The operator types part of an intent's id or title and picks it by number."""
    from rapidfuzz import fuzz, process

    query = _ask("  intent (id atau judul / id or title): ")
    if not query:
        return None
    names = {it.id: f"{it.id} ({it.title['id']})" for it in content.intents.intents}
    if query in names:
        return query
    hits = process.extract(query, names, scorer=fuzz.WRatio, limit=5)
    for n, (label, _, _) in enumerate(hits, 1):
        print(f"    {n}. {label}")
    choice = _ask("  nomor / number: ")
    if choice and choice.isascii() and choice.isdigit() and 1 <= int(choice) <= len(hits):
        return hits[int(choice) - 1][2]
    return None


def _stage_progress():
    """A cold build of the model prints its progress on stderr; a warm one prints nothing."""
    def show(stage: str, done: int, total: int) -> None:
        label = {"embed": "sentence vectors of new examples"}.get(stage, stage)
        end = "\n" if done >= total else ""
        print(f"\r{label}: {done}/{total}", end=end, file=sys.stderr, flush=True)
    return show


def _cmd_db_migrate(args, settings) -> int:
    """Bring the database's schema up to date (what `mia run` also does at start): before rolling
    out a new version to several workers, or to check which database the settings name."""
    from bot.store.open import shown

    async def run(store) -> int:
        return await store.schema_version()

    version = asyncio.run(_with_store(settings, run))
    print(f"Database {shown(settings.database)}: schema version {version}, up to date.")
    return 0


def _cmd_db_purge(args, settings) -> int:
    import time as _time

    cutoff = _time.time() - settings.mia_retention_days * 86400
    counts = asyncio.run(_with_store(settings, lambda store: store.purge(cutoff, dry_run=args.dry_run,
                                                                                vacuum=True)))
    label = "would change (dry run)" if args.dry_run else "changed"
    print(f"Retention {settings.mia_retention_days} days: {label}:")
    for name, n in counts.items():
        print(f"  {name}: {n}")
    return 0
